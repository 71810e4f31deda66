//! A request body of any API shape through the request path: parsing, routing (with the
//! default guardrails when the first byte is odd) and the headers-phase decision.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sluice_core::canonical::ApiKind;
use sluice_core::config::Config;
use sluice_core::pipeline::route_request;

fn configs() -> &'static [Config; 2] {
    static CONFIGS: OnceLock<[Config; 2]> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let catalog = r#""models": {"m": {"context_window": 2000}, "llama*": {},
            "base": {"adapters": ["lora-a"]}}, "aliases": {"alias": "m", "gpt-*": "lora-a"}"#;
        [
            Config::from_json(format!("{{{catalog}}}").as_bytes()).unwrap(),
            Config::from_json(format!("{{{catalog}, \"guardrails\": {{}}}}").as_bytes()).unwrap(),
        ]
    })
}

const APIS: [ApiKind; 5] = [
    ApiKind::ChatCompletions,
    ApiKind::Completions,
    ApiKind::Embeddings,
    ApiKind::Responses,
    ApiKind::Messages,
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let api = APIS[usize::from(selector >> 1) % APIS.len()];
    let config = &configs()[usize::from(selector & 1)];
    match route_request(config, api, body) {
        Ok(routed) => {
            if let Some(sent) = routed.body {
                // What goes upstream is readable again.
                assert!(sluice_core::json::TopLevel::parse(&sent).is_ok());
            }
        }
        Err(error) => {
            assert!((400..500).contains(&error.status()), "{error:?}");
            let _ = error.body(api.flavor());
        }
    }
});
