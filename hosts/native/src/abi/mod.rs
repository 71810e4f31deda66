//! The project's own bindings to Envoy 1.40's dynamic-module ABI: the only code in this crate
//! that may use `unsafe`. Every `unsafe` block says why it is sound (`// SAFETY:`; clippy's
//! `undocumented_unsafe_blocks` is denied at the crate root).
//!
//! - `sys`: the C types and the callbacks Envoy exports, declared by hand from `abi.h`.
//! - `hooks`: the functions Envoy calls (`envoy_dynamic_module_on_*`). Each runs its body inside
//!   `catch_unwind`: a panic never crosses into Envoy (that would abort the proxy). A stream
//!   whose filter panicked gets a 500 in its API's format and no more filter callbacks.
//! - `stream`, `config`, `log`: the safe wrappers that implement `host_api` over the callbacks.
//! - `version`: the ABI version handshake.
//!
//! The soundness argument the wrappers share: Envoy calls one stream's hooks one at a time on
//! that stream's worker thread, and the pointers it passes stay valid for the whole hook call;
//! memory Envoy lends (header values, body chunks) stays valid until the hook returns or the
//! module calls a setter on the same map or buffer. The wrappers encode that with lifetimes: a
//! view lives only inside one hook, lent slices borrow the view, writes need `&mut`.

mod config;
mod hooks;
mod log;
mod stream;
mod sys;
pub mod version;

pub(crate) use log::log as process_log;

#[cfg(test)]
mod fake_envoy;
#[cfg(test)]
pub(crate) mod tests;
