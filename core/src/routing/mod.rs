//! Which model a request is for, and where it goes: the model catalog (models, LoRA adapters,
//! aliases) and the checks that need it.

mod catalog;
mod context_window;

pub use catalog::{ModelCatalog, ModelSpec, Resolution};
pub use context_window::check_context_window;
