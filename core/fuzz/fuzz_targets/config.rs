//! Configuration bytes: a configuration or an error that names a field.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_core::config::Config;

fuzz_target!(|data: &[u8]| {
    if let Err(error) = Config::from_json(data) {
        assert!(!error.field.is_empty());
    }
});
