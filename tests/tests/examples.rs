//! The Kubernetes examples carry `envoy.yaml`'s `local_reply_config` mappers as copies (neither
//! Istio nor Envoy Gateway can refer to a file), and `envoy.wasm.yaml` is `envoy.yaml` with the
//! other build of the filter: none of them may drift from `envoy.yaml`, which the other tests run
//! in a real Envoy (as they run `envoy.wasm.yaml`).
//!
//! Single-host: these read files; no Envoy runs.

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
        "envoy.wasm.yaml",
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

/// `file` without comments, blank lines, its top-level `stats_config` block and its `- name:
/// sluice` and `- name: sluice.upstream` HTTP filter blocks: what both builds' configs must
/// share.
fn without_the_build(file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(paths::repo_root().join(file)).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut kept = Vec::new();
    let mut skip_deeper_than: Option<usize> = None;
    for line in lines {
        if let Some(depth) = skip_deeper_than {
            if indent(line) > depth {
                continue;
            }
            skip_deeper_than = None;
        }
        if line == "stats_config:"
            || line.trim() == "- name: sluice"
            || line.trim() == "- name: sluice.upstream"
        {
            skip_deeper_than = Some(indent(line));
            continue;
        }
        kept.push(line.to_owned());
    }
    kept
}

/// The filter's JSON configuration in `file` (the block under `value: &sluice_config |`).
fn filter_json(file: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(paths::repo_root().join(file)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim() == "value: &sluice_config |")
        .unwrap();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let json: Vec<&str> = lines[start + 1..]
        .iter()
        .take_while(|l| l.trim().is_empty() || indent(l) > indent(lines[start]))
        .copied()
        .collect();
    serde_json::from_str(&json.join("\n")).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// `envoy.yaml` (native module) and `envoy.wasm.yaml` (proxy-wasm) are one gateway: the same
/// listener, timeouts, error mappers, routes, clusters, access log and filter configuration;
/// they differ in the filter block, the metrics' `stats_config` and the access log's
/// filter-state keys (proxy-wasm prefixes the filter's keys with `wasm.`).
#[test]
fn both_shipped_configs_are_one_gateway_with_another_build_of_the_filter() {
    let native = without_the_build("envoy.yaml");
    let wasm: Vec<String> = without_the_build("envoy.wasm.yaml")
        .into_iter()
        .map(|l| l.replace("%FILTER_STATE(wasm.sluice.", "%FILTER_STATE(sluice."))
        .collect();
    assert!(native.len() > 100, "{native:?}");
    for (i, (n, w)) in native.iter().zip(&wasm).enumerate() {
        assert_eq!(n, w, "line {i} of the shared part differs");
    }
    assert_eq!(native.len(), wasm.len());
    assert_eq!(filter_json("envoy.yaml"), filter_json("envoy.wasm.yaml"));
}
