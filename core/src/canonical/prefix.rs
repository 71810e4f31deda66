//! The prompt-prefix hash used for prefix-affinity routing: requests that share the start of
//! their prompt (a long system prompt, an ongoing conversation) hash alike, so they can be sent to
//! the replica whose KV cache already holds that prefix.

use xxhash_rust::xxh3::Xxh3;

use super::{CanonicalRequest, Segment, SegmentRole};

/// How much of the prompt the hash covers. Long enough to tell system prompts apart, short enough
/// that requests differing only in their last user turn still share it.
pub const PREFIX_WINDOW_BYTES: usize = 1024;

impl CanonicalRequest<'_> {
    /// Hashes role-tagged text in reading order up to `PREFIX_WINDOW_BYTES` bytes. xxh3 with a
    /// fixed seed: the same on every worker, Envoy and version of this filter's format.
    pub fn compute_prefix_hash(&self) -> u64 {
        prefix_hash(self.segments())
    }
}

pub(crate) fn prefix_hash<'r>(segments: impl Iterator<Item = Segment<'r>>) -> u64 {
    let mut hasher = Xxh3::new();
    let mut remaining = PREFIX_WINDOW_BYTES;
    for segment in segments {
        if remaining == 0 {
            break;
        }
        hasher.update(&[role_tag(segment.role)]);
        let bytes = segment.text.as_bytes();
        let take = bytes.len().min(remaining);
        hasher.update(bytes.get(..take).unwrap_or(bytes));
        remaining = remaining.saturating_sub(take);
    }
    hasher.digest()
}

fn role_tag(role: SegmentRole) -> u8 {
    match role {
        SegmentRole::System => b's',
        SegmentRole::User => b'u',
        SegmentRole::Assistant => b'a',
        SegmentRole::ToolResult => b't',
        SegmentRole::ToolDefinition => b'd',
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::{PREFIX_WINDOW_BYTES, prefix_hash};
    use crate::canonical::{Segment, SegmentRole};

    fn hash(segments: &[(SegmentRole, &str)]) -> u64 {
        prefix_hash(
            segments
                .iter()
                .map(|(role, text)| Segment { role: *role, text }),
        )
    }

    #[test]
    fn shared_long_prefix_hashes_alike_and_roles_matter() {
        let system = "x".repeat(PREFIX_WINDOW_BYTES);
        let a = hash(&[(SegmentRole::System, &system), (SegmentRole::User, "one")]);
        let b = hash(&[(SegmentRole::System, &system), (SegmentRole::User, "two")]);
        assert_eq!(a, b);
        let short_a = hash(&[
            (SegmentRole::System, "be brief"),
            (SegmentRole::User, "one"),
        ]);
        let short_b = hash(&[
            (SegmentRole::System, "be brief"),
            (SegmentRole::User, "two"),
        ]);
        assert_ne!(short_a, short_b);
        assert_ne!(
            hash(&[(SegmentRole::System, "hi")]),
            hash(&[(SegmentRole::User, "hi")])
        );
    }

    /// Pinned values, computed with the reference C implementation of XXH3-64 (seed 0,
    /// `libxxhash` 0.8, Debian's `libxxhash0`) over the bytes written out here: each segment is
    /// its role's tag byte, then its text. Replicas' affinity tables in other Envoys, and Envoys
    /// running another build of this filter, depend on exactly these values.
    #[test]
    fn hash_is_xxh3_of_tagged_text_and_stable_across_builds() {
        // XXH3_64bits("uhello")
        assert_eq!(hash(&[(SegmentRole::User, "hello")]), 0xc15b_44c2_37de_9a3a);
        // XXH3_64bits("sbe briefuhi")
        assert_eq!(
            hash(&[(SegmentRole::System, "be brief"), (SegmentRole::User, "hi")]),
            0xd8aa_c49a_82d3_9688
        );
        // XXH3_64bits("dlookupaxtyuz"): every role's tag.
        assert_eq!(
            hash(&[
                (SegmentRole::ToolDefinition, "lookup"),
                (SegmentRole::Assistant, "x"),
                (SegmentRole::ToolResult, "y"),
                (SegmentRole::User, "z")
            ]),
            0xb408_3106_b934_d74e
        );
    }

    #[test]
    fn the_window_counts_text_bytes_and_cuts_inside_a_segment() {
        // XXH3_64bits("s" + 1000 × "a" + "u" + 24 × "b"): 1024 bytes of text, tags not counted;
        // the rest of the user's text and any later segment are outside the window.
        let system = "a".repeat(1000);
        let user = "b".repeat(100);
        let expected = 0x0271_d006_604f_9a35;
        assert_eq!(
            hash(&[(SegmentRole::System, &system), (SegmentRole::User, &user)]),
            expected
        );
        assert_eq!(
            hash(&[
                (SegmentRole::System, &system),
                (SegmentRole::User, &user),
                (SegmentRole::Assistant, "later")
            ]),
            expected
        );
    }
}
