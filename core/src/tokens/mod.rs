//! Token estimation before the request goes upstream, without any vocabulary in memory.
//!
//! Text is cut into the pieces a BPE pre-tokenizer would make (`scan`) and each piece is priced
//! from a small table learned from the real tokenizer of the model's family (`tables`, about
//! 1 KB per family). The request-level estimate (`request`) adds what each family's chat format
//! adds per message, per tool and per image, and the output budget quotas reserve. Accuracy
//! against the real tokenizers is measured by `make token-accuracy` (docs/token-accuracy.md).

mod count;
mod family;
mod image;
mod request;
pub mod scan;
#[cfg(test)]
mod scan_reference;
mod tables;

pub use count::{DIGITS_CAP, PUNCT_CAP, SPACE_CAP, Tables, UNIT, WORD_CAP, to_tokens};
pub use family::Family;
pub use image::{ImageSize, image_size_from_data_url};
pub use request::{Budget, Estimate, estimate_request};

/// Estimated tokens of `text` for `family`.
pub fn count(text: &str, family: Family) -> u64 {
    family.tables().count(text)
}
