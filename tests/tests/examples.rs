//! The Kubernetes examples carry `envoy.yaml`'s `local_reply_config` mappers as copies (neither
//! Istio nor Envoy Gateway can refer to a file): they must not drift from the original, which the
//! other tests run in a real Envoy.

use sluice_e2e::paths;

/// The `mappers:` block of `file` (the one line whose text is `mappers:`, and every line after it
/// that is blank, a comment or indented under it, or a list item at its level), without blank
/// and comment lines, de-indented.
fn mappers(file: &str) -> Vec<String> {
    let path = paths::repo_root().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let lines: Vec<&str> = text.lines().collect();
    let starts: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].trim() == "mappers:")
        .collect();
    assert_eq!(starts.len(), 1, "{file} must have one `mappers:` block");
    let start = starts[0];
    let indent = |l: &str| l.len() - l.trim_start().len();
    let depth = indent(lines[start]);
    lines[start..]
        .iter()
        .enumerate()
        .take_while(|(i, l)| {
            *i == 0
                || l.trim().is_empty()
                || l.trim_start().starts_with('#')
                || indent(l) > depth
                || (indent(l) == depth && l.trim_start().starts_with("- "))
        })
        .map(|(_, l)| l)
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|l| l[depth..].trim_end().to_owned())
        .collect()
}

#[test]
fn the_examples_map_envoys_errors_as_envoy_yaml_does() {
    let shipped = mappers("envoy.yaml");
    assert!(shipped.len() > 20, "{shipped:?}");
    for example in [
        "examples/istio/envoyfilter.yaml",
        "examples/envoy-gateway/envoypatchpolicy.yaml",
    ] {
        assert_eq!(
            mappers(example),
            shipped,
            "{example} differs from envoy.yaml"
        );
    }
}
