//! Response bytes through the guardrails: the JSON guard, and the stream guard fed the bytes
//! in two pieces (split where the first byte says).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sluice_core::config::Config;
use sluice_core::error::ApiFlavor;
use sluice_core::guardrails::{Hits, StreamGuard};

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        Config::from_json(br#"{"models": {"*": {}}, "guardrails": {"stream_holdback_bytes": 64}}"#)
            .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let guardrails = &config().guardrails.as_ref().unwrap().0;
    let index = guardrails.policy_for(None, None, "m");
    if let Some(policy) = guardrails.response_policy(index) {
        let _ = guardrails.guard_json_response(policy, bytes, &mut Hits::default());
    }
    let flavor = if selector & 1 == 1 {
        ApiFlavor::Anthropic
    } else {
        ApiFlavor::OpenAi
    };
    let mut guard = StreamGuard::new(index, guardrails.stream_holdback_bytes, flavor);
    let cut = usize::from(selector).min(bytes.len());
    let (first, second) = bytes.split_at(cut);
    let _ = guard.chunk(guardrails, first, false);
    let _ = guard.chunk(guardrails, second, true);
});
