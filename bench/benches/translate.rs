//! The translation micro figure (`sluice_bench::providers::micro`): core's OpenAI <-> Anthropic
//! translation of one typical request and its answer, timed in a plain loop, compiled as the
//! native module is (optimized). `make bench`'s providers section runs it with `cargo bench
//! --bench translate` and reads the `SLUICE_TRANSLATE` lines it prints.

use std::time::Duration;

use sluice_bench::providers::micro;

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported (the run is seconds).
    for figure in micro::run(400, Duration::from_millis(2)) {
        println!("{}", micro::line(&figure));
    }
}
