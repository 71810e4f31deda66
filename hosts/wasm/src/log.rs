//! Logging through the host. Envoy applies its own log level (`--component-log-level wasm:…`),
//! so messages below it are dropped there; keep hot-path logging to rare events.
//!
//! The SDK's `log` facade unwraps the host's status; these helpers ignore a failed log call
//! instead, because losing a log line must never fail a request.

use proxy_wasm::hostcalls;
use proxy_wasm::types::LogLevel;

pub fn error(message: &str) {
    let _ = hostcalls::log(LogLevel::Error, message);
}

pub fn warn(message: &str) {
    let _ = hostcalls::log(LogLevel::Warn, message);
}

pub fn info(message: &str) {
    let _ = hostcalls::log(LogLevel::Info, message);
}

/// If a panic ever happens (in the SDK's dispatcher, say), say why in Envoy's log before the VM
/// traps, instead of leaving only a bare Wasm trap behind.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|panic| {
        let _ = hostcalls::log(LogLevel::Critical, &format!("panic: {panic}"));
    }));
}
