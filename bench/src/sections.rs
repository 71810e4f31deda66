//! `BENCHMARKS.md` holds one part per section of `make bench`: the overhead sections first, then
//! each later section between its two marker lines (routing, cluster quotas, flow control,
//! providers). A run
//! replaces the parts it measured and keeps the others, so `bench --only routing` leaves the
//! other figures alone, and so on for each section.

/// The routing section sits between these lines, after the overhead sections.
pub const BEGIN: &str = "<!-- routing benchmark: begin (written by `make bench`) -->";
pub const END: &str = "<!-- routing benchmark: end -->";

/// A part of the report after the overhead sections, from its `begin` line to its `end` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub begin: &'static str,
    pub end: &'static str,
}

pub const ROUTING: Part = Part {
    begin: BEGIN,
    end: END,
};

pub const QUOTA_CLUSTER: Part = Part {
    begin: "<!-- cluster quota benchmark: begin (written by `make bench`) -->",
    end: "<!-- cluster quota benchmark: end -->",
};

pub const FLOW_CONTROL: Part = Part {
    begin: "<!-- flow control benchmark: begin (written by `make bench`) -->",
    end: "<!-- flow control benchmark: end -->",
};

pub const PROVIDERS: Part = Part {
    begin: "<!-- providers benchmark: begin (written by `make bench`) -->",
    end: "<!-- providers benchmark: end -->",
};

/// The marked parts, in the order the file has them.
pub const PARTS: [Part; 4] = [ROUTING, QUOTA_CLUSTER, FLOW_CONTROL, PROVIDERS];

impl Part {
    /// This part of `existing`, markers included (to the end of the file if its end line is
    /// missing).
    fn find(self, existing: &str) -> Option<&str> {
        let start = existing.find(self.begin)?;
        let end = existing[start..]
            .find(self.end)
            .map_or(existing.len(), |i| start + i + self.end.len());
        Some(&existing[start..end])
    }
}

/// `existing` with the parts given replaced: the overhead sections (everything before the first
/// marked part) and any marked part in `parts`. A part not given keeps what `existing` had.
pub fn compose(existing: &str, overhead: Option<&str>, parts: &[(Part, &str)]) -> String {
    let first_marked = PARTS
        .iter()
        .filter_map(|part| existing.find(part.begin))
        .min()
        .unwrap_or(existing.len());
    let mut out = overhead
        .unwrap_or(&existing[..first_marked])
        .trim_end()
        .to_owned();
    if out.is_empty() {
        out = "# Benchmarks".to_owned();
    }
    for part in PARTS {
        let given = parts
            .iter()
            .find(|(p, _)| *p == part)
            .map(|(_, text)| *text);
        let text = given.or_else(|| part.find(existing)).unwrap_or("").trim();
        if !text.is_empty() {
            out.push_str("\n\n");
            out.push_str(text);
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_replaces_only_the_parts_given() {
        let routing_a = format!("{BEGIN}\nrouting A\n{END}");
        let routing_b = format!("{BEGIN}\nrouting B\n{END}");
        let file = compose(
            "",
            Some("# Benchmarks\n\noverhead 1\n"),
            &[(ROUTING, &routing_a)],
        );
        assert_eq!(file, format!("# Benchmarks\n\noverhead 1\n\n{routing_a}\n"));
        // --only routing keeps the overhead sections...
        let file = compose(&file, None, &[(ROUTING, &routing_b)]);
        assert!(file.contains("overhead 1") && file.contains("routing B"));
        assert!(!file.contains("routing A"));
        // ...and --only overhead keeps the routing section.
        let file = compose(&file, Some("# Benchmarks\n\noverhead 2"), &[]);
        assert!(file.contains("overhead 2") && file.contains("routing B"));
        assert!(!file.contains("overhead 1"));
        // A file from before the routing section existed is all overhead.
        let file = compose("# Benchmarks\n\nold\n", None, &[(ROUTING, &routing_a)]);
        assert_eq!(file, format!("# Benchmarks\n\nold\n\n{routing_a}\n"));
        assert_eq!(
            compose("", None, &[(ROUTING, &routing_a)]),
            format!("# Benchmarks\n\n{routing_a}\n")
        );
    }

    #[test]
    fn the_cluster_quota_part_follows_routing_and_is_kept_by_the_others() {
        let routing = format!("{BEGIN}\nrouting\n{END}");
        let quota = |text: &str| format!("{}\n{text}\n{}", QUOTA_CLUSTER.begin, QUOTA_CLUSTER.end);
        // Added to a file that has the other two parts: it goes last.
        let file = compose(
            &format!("# Benchmarks\n\noverhead\n\n{routing}\n"),
            None,
            &[(QUOTA_CLUSTER, &quota("quota 1"))],
        );
        assert_eq!(
            file,
            format!(
                "# Benchmarks\n\noverhead\n\n{routing}\n\n{}\n",
                quota("quota 1")
            )
        );
        // Rewriting routing or the overhead keeps it, and where it was.
        let file = compose(&file, None, &[(ROUTING, &format!("{BEGIN}\nnew\n{END}"))]);
        let file = compose(&file, Some("# Benchmarks\n\nnew overhead"), &[]);
        assert!(file.ends_with(&format!("{}\n", quota("quota 1"))), "{file}");
        assert!(file.contains("\nnew\n") && file.contains("new overhead"));
        // Rewriting it keeps the others.
        let file = compose(&file, None, &[(QUOTA_CLUSTER, &quota("quota 2"))]);
        assert!(file.contains("quota 2") && !file.contains("quota 1"));
        assert!(file.contains("\nnew\n") && file.contains("new overhead"));
        // In a file without a routing part, the overhead ends where it starts.
        let file = compose(
            "# Benchmarks\n\nold\n",
            None,
            &[(QUOTA_CLUSTER, &quota("q"))],
        );
        let file = compose(&file, None, &[(ROUTING, &routing)]);
        assert_eq!(
            file,
            format!("# Benchmarks\n\nold\n\n{routing}\n\n{}\n", quota("q"))
        );
    }

    #[test]
    fn the_flow_control_part_goes_last_and_the_others_keep_it() {
        let part = |p: Part, text: &str| format!("{}\n{text}\n{}", p.begin, p.end);
        let existing = format!(
            "# Benchmarks\n\noverhead\n\n{}\n\n{}\n",
            part(ROUTING, "routing"),
            part(QUOTA_CLUSTER, "quota")
        );
        let file = compose(
            &existing,
            None,
            &[(FLOW_CONTROL, &part(FLOW_CONTROL, "flow 1"))],
        );
        assert_eq!(
            file,
            format!(
                "{}\n\n{}\n",
                existing.trim_end(),
                part(FLOW_CONTROL, "flow 1")
            )
        );
        let file = compose(
            &file,
            None,
            &[(QUOTA_CLUSTER, &part(QUOTA_CLUSTER, "quota 2"))],
        );
        assert!(
            file.ends_with(&format!("{}\n", part(FLOW_CONTROL, "flow 1"))),
            "{file}"
        );
        let file = compose(
            &file,
            None,
            &[(FLOW_CONTROL, &part(FLOW_CONTROL, "flow 2"))],
        );
        assert!(file.contains("flow 2") && !file.contains("flow 1"));
        assert!(file.contains("quota 2") && file.contains("\nrouting\n"));
    }

    #[test]
    fn the_providers_part_goes_last_and_survives_the_others() {
        let part = |p: Part, text: &str| format!("{}\n{text}\n{}", p.begin, p.end);
        let existing = format!(
            "# Benchmarks\n\noverhead\n\n{}\n\n{}\n",
            part(ROUTING, "routing"),
            part(FLOW_CONTROL, "flow")
        );
        let file = compose(
            &existing,
            None,
            &[(PROVIDERS, &part(PROVIDERS, "providers 1"))],
        );
        assert!(
            file.ends_with(&format!("{}\n", part(PROVIDERS, "providers 1"))),
            "{file}"
        );
        // A default run (overhead and the other parts) keeps it.
        let file = compose(
            &file,
            Some("# Benchmarks\n\nnew overhead"),
            &[(FLOW_CONTROL, &part(FLOW_CONTROL, "flow 2"))],
        );
        assert!(file.contains("providers 1") && file.contains("flow 2"));
        assert!(file.contains("new overhead") && !file.contains("\noverhead\n"));
    }
}
