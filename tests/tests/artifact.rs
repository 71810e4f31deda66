//! The filter Envoy loads stays small: every worker compiles and holds its own copy.

use sluice_e2e::paths;

#[test]
fn filter_wasm_is_under_two_megabytes() {
    let size = std::fs::metadata(paths::filter_wasm()).unwrap().len();
    assert!(size < 2 * 1024 * 1024, "{size} bytes");
}
