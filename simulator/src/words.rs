//! The simulated model's output: deterministic words, one per token, each with a leading space.

const WORDS: [&str; 16] = [
    " the",
    " quick",
    " brown",
    " fox",
    " jumps",
    " over",
    " a",
    " lazy",
    " dog",
    " while",
    " simulated",
    " tokens",
    " stream",
    " from",
    " the",
    " server",
];

/// The text of output token `index` (0-based).
pub fn token_text(index: u32) -> &'static str {
    WORDS[index as usize % WORDS.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_cycle() {
        assert_eq!(token_text(1), " quick");
        assert_eq!(token_text(16), token_text(0));
    }
}
