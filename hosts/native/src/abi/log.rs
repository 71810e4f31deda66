//! Logging into Envoy's log (component `dynamic_modules`), and the panic hook that puts every
//! panic's message and location there.

use super::sys;
use crate::host_api::LogLevel;

pub fn log(level: LogLevel, message: &str) {
    // SAFETY: the callback only reads `message` during the call (a module buffer), and it is
    // thread-safe (it writes to Envoy's logger).
    unsafe {
        sys::envoy_dynamic_module_callback_log(
            abi_level(level),
            sys::ModuleBuffer::lend(message.as_bytes()),
        )
    }
}

fn abi_level(level: LogLevel) -> u32 {
    match level {
        LogLevel::Trace => sys::log_level::TRACE,
        LogLevel::Debug => sys::log_level::DEBUG,
        LogLevel::Info => sys::log_level::INFO,
        LogLevel::Warn => sys::log_level::WARN,
        LogLevel::Error => sys::log_level::ERROR,
        LogLevel::Critical => sys::log_level::CRITICAL,
    }
}

/// Routes the message and location of every panic in this module to Envoy's log (stderr, where
/// the default hook writes, is often not collected). The panic still unwinds to the hook's
/// `catch_unwind`, which says what it did about it.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|panic| {
        log(LogLevel::Error, &format!("sluice-native: panic {panic}"));
    }));
}
