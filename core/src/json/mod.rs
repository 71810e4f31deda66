//! The request body as JSON: its top-level object kept as raw fields in their original order,
//! typed access to single fields with errors that name the JSON path, and re-assembly with some
//! fields replaced so the rest of the body reaches the upstream byte for byte.
//!
//! Limits come from serde_json: nesting deeper than 128 levels is an error (no stack overflow),
//! strings must be valid UTF-8, numbers that do not fit the target type are errors. A duplicate
//! top-level key is an error (which copy would the upstream use?); inside typed fields serde
//! rejects duplicates of known fields, and other nested maps keep the last copy.

mod error_path;
mod object;
mod splice;

pub use error_path::path_at;
pub use splice::{Edit, splice, splice_into};

pub use object::{FieldError, TopLevel};
