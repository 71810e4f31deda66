//! Simulated tokenization.
//!
//! The simulator has no tokenizer. A prompt is reduced to a byte string in which every four bytes
//! stand for one token, which is close to the average for English text on common tokenizers. Text
//! prompts use their UTF-8 bytes; prompts given as token ids use four bytes per id, so their token
//! count is exactly the number of ids. The same byte string feeds the prefix cache: a KV block of
//! `B` tokens covers `4·B` bytes, and its identity is a hash chained over those bytes.

use std::hash::{DefaultHasher, Hasher};

/// How many prompt bytes one simulated token covers.
pub const BYTES_PER_TOKEN: usize = 4;

/// Identity of one full block of prompt tokens, including everything before it in the prompt.
pub type BlockHash = u64;

/// A flattened prompt, ready for token counting and prefix-cache hashing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prompt {
    bytes: Vec<u8>,
}

impl Prompt {
    pub fn from_text(text: impl Into<String>) -> Self {
        Self {
            bytes: text.into().into_bytes(),
        }
    }

    pub fn from_token_ids(ids: &[u32]) -> Self {
        Self {
            bytes: ids.iter().flat_map(|id| id.to_le_bytes()).collect(),
        }
    }

    /// `ceil(bytes / 4)`, at least 1: even an empty prompt costs the model one token (the BOS).
    pub fn token_count(&self) -> u32 {
        let tokens = self.bytes.len().div_ceil(BYTES_PER_TOKEN).max(1);
        u32::try_from(tokens).unwrap_or(u32::MAX)
    }

    /// Chained hashes of every *full* block of `block_size` tokens. A trailing partial block has no
    /// identity, as in vLLM, because later tokens would still change its contents.
    pub fn block_hashes(&self, block_size: u32) -> Vec<BlockHash> {
        let block_bytes = block_size as usize * BYTES_PER_TOKEN;
        let mut previous: BlockHash = 0;
        self.bytes
            .chunks_exact(block_bytes)
            .map(|block| {
                let mut hasher = DefaultHasher::new();
                hasher.write_u64(previous);
                hasher.write(block);
                previous = hasher.finish();
                previous
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_four_bytes_per_token_rounding_up() {
        assert_eq!(Prompt::from_text("").token_count(), 1);
        assert_eq!(Prompt::from_text("abcd").token_count(), 1);
        assert_eq!(Prompt::from_text("abcde").token_count(), 2);
        // Multi-byte characters count by their UTF-8 length.
        assert_eq!(Prompt::from_text("ééé").token_count(), 2);
    }

    #[test]
    fn token_ids_count_one_each() {
        assert_eq!(Prompt::from_token_ids(&[1, 2, 3]).token_count(), 3);
    }

    #[test]
    fn block_hashes_cover_only_full_blocks_and_chain() {
        let block = "x".repeat(4 * 2);
        let a = Prompt::from_text(format!("{block}{block}tail"));
        let hashes = a.block_hashes(2);
        assert_eq!(hashes.len(), 2);
        // Same bytes in a different position hash differently because the chain differs.
        assert_ne!(hashes[0], hashes[1]);

        let b = Prompt::from_text(format!("{block}{}", "y".repeat(8)));
        let other = b.block_hashes(2);
        assert_eq!(other[0], hashes[0]);
        assert_ne!(other[1], hashes[1]);
    }
}
