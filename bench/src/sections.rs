//! `BENCHMARKS.md` holds two parts, each written by its own section of `make bench`: the overhead
//! sections first, then the routing section between two marker lines. A run replaces the parts it
//! measured and keeps the others, so `bench --only routing` leaves the overhead figures alone and
//! the other way round.

/// The routing section sits between these lines, after the overhead sections.
pub const BEGIN: &str = "<!-- routing benchmark: begin (written by `make bench`) -->";
pub const END: &str = "<!-- routing benchmark: end -->";

/// `existing` with the parts given replaced: the overhead sections (everything before `BEGIN`)
/// and the routing section (`BEGIN` to `END`). A part not given keeps what `existing` had.
pub fn compose(existing: &str, overhead: Option<&str>, routing: Option<&str>) -> String {
    let (old_overhead, old_routing) = match existing.find(BEGIN) {
        Some(start) => {
            let end = existing[start..]
                .find(END)
                .map_or(existing.len(), |i| start + i + END.len());
            (&existing[..start], &existing[start..end])
        }
        None => (existing, ""),
    };
    let mut overhead = overhead.unwrap_or(old_overhead).trim_end().to_owned();
    if overhead.is_empty() {
        overhead = "# Benchmarks".to_owned();
    }
    let routing = routing.unwrap_or(old_routing).trim();
    if routing.is_empty() {
        format!("{overhead}\n")
    } else {
        format!("{overhead}\n\n{routing}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_replaces_only_the_parts_given() {
        let routing_a = format!("{BEGIN}\nrouting A\n{END}");
        let routing_b = format!("{BEGIN}\nrouting B\n{END}");
        let file = compose("", Some("# Benchmarks\n\noverhead 1\n"), Some(&routing_a));
        assert_eq!(file, format!("# Benchmarks\n\noverhead 1\n\n{routing_a}\n"));
        // --only routing keeps the overhead sections...
        let file = compose(&file, None, Some(&routing_b));
        assert!(file.contains("overhead 1") && file.contains("routing B"));
        assert!(!file.contains("routing A"));
        // ...and --only overhead keeps the routing section.
        let file = compose(&file, Some("# Benchmarks\n\noverhead 2"), None);
        assert!(file.contains("overhead 2") && file.contains("routing B"));
        assert!(!file.contains("overhead 1"));
        // A file from before the routing section existed is all overhead.
        let file = compose("# Benchmarks\n\nold\n", None, Some(&routing_a));
        assert_eq!(file, format!("# Benchmarks\n\nold\n\n{routing_a}\n"));
        assert_eq!(
            compose("", None, Some(&routing_a)),
            format!("# Benchmarks\n\n{routing_a}\n")
        );
    }
}
