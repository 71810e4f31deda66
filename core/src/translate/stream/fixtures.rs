//! Streams as the providers send them, written out by hand from their documented formats
//! (field order, spacing and escapes as the services emit them): Anthropic Messages events and
//! OpenAI Chat Completions chunks (OpenAI itself, vLLM, Azure), each with what a client should
//! end up with once the stream is translated.

/// Text with multi-byte characters and escapes, a `ping`, and cached-token usage.
pub const ANTHROPIC_TEXT: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":20,"cache_read_input_tokens":1000,"output_tokens":1,"service_tier":"standard"}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Bonjour ! "}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Café ☕ — 東京 🗼\n\"quoted\" \\ \u00e9"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}

event: message_stop
data: {"type":"message_stop"}

"#;

/// Text, then two tool calls whose input streams as `input_json_delta` fragments.
pub const ANTHROPIC_TOOLS: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message","role":"assistant","model":"claude-opus-4-1-20250805","stop_sequence":null,"usage":{"input_tokens":472,"output_tokens":2},"content":[],"stop_reason":null}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Okay"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":", let's check the weather for San Francisco, CA:"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"location\":"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":" \"San Francisc"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"o, CA\", \"unit\": \"fah"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"renheit\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_01WdK2p7KLNSyBbqDcz5hYZn","name":"get_time","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"timezone\": \"America/Los_Angeles\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":2}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}

"#;

/// Extended thinking (with its signature), a redacted thinking block, then the answer; the
/// spaced JSON of Anthropic's thinking examples, and `message_delta` with every usage figure.
pub const ANTHROPIC_THINKING: &str = r#"event: message_start
data: {"type": "message_start", "message": {"id": "msg_01KpJ3rZ6i7vZVK5u8t1kxWX", "type": "message", "role": "assistant", "content": [], "model": "claude-sonnet-4-5-20250929", "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 64, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 1}}}

event: content_block_start
data: {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}

event: content_block_delta
data: {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "I need to find the GCD of 1071 and 462 using the Euclidean algorithm.\n\n1071 = 2 × 462 + 147"}}

event: content_block_delta
data: {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "\n462 = 3 × 147 + 21\n147 = 7 × 21 + 0"}}

event: content_block_delta
data: {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds..."}}

event: content_block_stop
data: {"type": "content_block_stop", "index": 0}

event: content_block_start
data: {"type": "content_block_start", "index": 1, "content_block": {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qyPg..."}}

event: content_block_stop
data: {"type": "content_block_stop", "index": 1}

event: content_block_start
data: {"type": "content_block_start", "index": 2, "content_block": {"type": "text", "text": ""}}

event: content_block_delta
data: {"type": "content_block_delta", "index": 2, "delta": {"type": "text_delta", "text": "The greatest common divisor of 1071 and 462 is **21**."}}

event: content_block_stop
data: {"type": "content_block_stop", "index": 2}

event: message_delta
data: {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"input_tokens": 64, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 180}}

event: message_stop
data: {"type": "message_stop"}

"#;

/// The streaming classifier stopped the answer: `stop_reason: refusal`.
pub const ANTHROPIC_REFUSAL: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_01Ruq5Rk1bHc5VRdCpXPZkDf","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":31,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"I can't help with"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"refusal","stop_sequence":null},"usage":{"output_tokens":6}}

event: message_stop
data: {"type":"message_stop"}

"#;

/// Overloaded mid-stream: Anthropic's `error` event.
pub const ANTHROPIC_ERROR: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_01Bf8hWnKq3EN6sAjY2vQx1t","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":9,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Once upon"}}

event: error
data: {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}

"#;

/// The connection dropped in the middle of an event.
pub const ANTHROPIC_CUT: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_01Gx8N1kT9bq2Vd3ePz7Lmc4","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":9,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Once upon"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_del"#;

/// OpenAI text with cached prompt tokens (`stream_options.include_usage`).
pub const OPENAI_TEXT: &str = r#"data: {"id":"chatcmpl-BfLmX2sQhKXe1x9u1mQ7nJ4W","object":"chat.completion.chunk","created":1749194021,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_07871e2ad8","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-BfLmX2sQhKXe1x9u1mQ7nJ4W","object":"chat.completion.chunk","created":1749194021,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_07871e2ad8","choices":[{"index":0,"delta":{"content":"Bonjour ! "},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-BfLmX2sQhKXe1x9u1mQ7nJ4W","object":"chat.completion.chunk","created":1749194021,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_07871e2ad8","choices":[{"index":0,"delta":{"content":"Café ☕ — 東京 🗼\n\"quoted\" \\ \u00e9"},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-BfLmX2sQhKXe1x9u1mQ7nJ4W","object":"chat.completion.chunk","created":1749194021,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_07871e2ad8","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}

data: {"id":"chatcmpl-BfLmX2sQhKXe1x9u1mQ7nJ4W","object":"chat.completion.chunk","created":1749194021,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_07871e2ad8","choices":[],"usage":{"prompt_tokens":1200,"completion_tokens":15,"total_tokens":1215,"prompt_tokens_details":{"cached_tokens":1024,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}

data: [DONE]

"#;

/// Parallel tool calls, their arguments streamed in fragments.
pub const OPENAI_TOOLS: &str = r#"data: {"id":"chatcmpl-BfLnC8mMfZqR0bYwM9kZ3Tn2","object":"chat.completion.chunk","created":1749194064,"model":"gpt-4.1-2025-04-14","service_tier":"default","system_fingerprint":"fp_b3f1157249","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_DdmO9pD3xa9XTPNJ32zg2hcA","type":"function","function":{"name":"get_weather","arguments":""}}],"refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-BfLnC8mMfZqR0bYwM9kZ3Tn2","object":"chat.completion.chunk","created":1749194064,"model":"gpt-4.1-2025-04-14","service_tier":"default","system_fingerprint":"fp_b3f1157249","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"lo"}}]},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-BfLnC8mMfZqR0bYwM9kZ3Tn2","object":"chat.completion.chunk","created":1749194064,"model":"gpt-4.1-2025-04-14","service_tier":"default","system_fingerprint":"fp_b3f1157249","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"cation\": \"Paris, "}}]},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-BfLnC8mMfZqR0bYwM9kZ3Tn2","object":"chat.completion.chunk","created":1749194064,"model":"gpt-4.1-2025-04-14","service_tier":"default","system_fingerprint":"fp_b3f1157249","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"France\"}"}}]},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-BfLnC8mMfZqR0bYwM9kZ3Tn2","object":"chat.completion.chunk","created":1749194064,"model":"gpt-4.1-2025-04-14","service_tier":"default","system_fingerprint":"fp_b3f1157249","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_0Ph3bXkgvq0ihl6jRq5tkiaE","type":"function","function":{"name":"get_time","arguments":""}}]},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-BfLnC8mMfZqR0bYwM9kZ3Tn2","object":"chat.completion.chunk","created":1749194064,"model":"gpt-4.1-2025-04-14","service_tier":"default","system_fingerprint":"fp_b3f1157249","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{\"timezone\": \"Europe/Paris\"}"}}]},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-BfLnC8mMfZqR0bYwM9kZ3Tn2","object":"chat.completion.chunk","created":1749194064,"model":"gpt-4.1-2025-04-14","service_tier":"default","system_fingerprint":"fp_b3f1157249","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}],"usage":null}

data: {"id":"chatcmpl-BfLnC8mMfZqR0bYwM9kZ3Tn2","object":"chat.completion.chunk","created":1749194064,"model":"gpt-4.1-2025-04-14","service_tier":"default","system_fingerprint":"fp_b3f1157249","choices":[],"usage":{"prompt_tokens":310,"completion_tokens":52,"total_tokens":362,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}

data: [DONE]

"#;

/// vLLM serving a reasoning model: `reasoning_content` then `content`, vLLM's `stop_reason`
/// beside `finish_reason`, and `prompt_tokens_details: null`.
pub const OPENAI_THINKING: &str = r#"data: {"id":"chatcmpl-9c2f6a0e1b8d4c7fa3e5b2d1c0f9e8a7","object":"chat.completion.chunk","created":1749194102,"model":"Qwen/Qwen3-8B","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}

data: {"id":"chatcmpl-9c2f6a0e1b8d4c7fa3e5b2d1c0f9e8a7","object":"chat.completion.chunk","created":1749194102,"model":"Qwen/Qwen3-8B","choices":[{"index":0,"delta":{"reasoning_content":"The user asks"},"logprobs":null,"finish_reason":null}]}

data: {"id":"chatcmpl-9c2f6a0e1b8d4c7fa3e5b2d1c0f9e8a7","object":"chat.completion.chunk","created":1749194102,"model":"Qwen/Qwen3-8B","choices":[{"index":0,"delta":{"reasoning_content":" for 2+2: that is 4."},"logprobs":null,"finish_reason":null}]}

data: {"id":"chatcmpl-9c2f6a0e1b8d4c7fa3e5b2d1c0f9e8a7","object":"chat.completion.chunk","created":1749194102,"model":"Qwen/Qwen3-8B","choices":[{"index":0,"delta":{"content":"2 + 2 = 4."},"logprobs":null,"finish_reason":null}]}

data: {"id":"chatcmpl-9c2f6a0e1b8d4c7fa3e5b2d1c0f9e8a7","object":"chat.completion.chunk","created":1749194102,"model":"Qwen/Qwen3-8B","choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"length","stop_reason":null}]}

data: {"id":"chatcmpl-9c2f6a0e1b8d4c7fa3e5b2d1c0f9e8a7","object":"chat.completion.chunk","created":1749194102,"model":"Qwen/Qwen3-8B","choices":[],"usage":{"prompt_tokens":14,"total_tokens":60,"completion_tokens":46,"prompt_tokens_details":null}}

data: [DONE]

"#;

/// A structured-output refusal: `delta.refusal` instead of `delta.content`.
pub const OPENAI_REFUSAL: &str = r#"data: {"id":"chatcmpl-BfLoR4yJ1Qe9tN0sVb8Xk2Lm","object":"chat.completion.chunk","created":1749194150,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_07871e2ad8","choices":[{"index":0,"delta":{"role":"assistant","content":null,"refusal":""},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-BfLoR4yJ1Qe9tN0sVb8Xk2Lm","object":"chat.completion.chunk","created":1749194150,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_07871e2ad8","choices":[{"index":0,"delta":{"refusal":"I'm sorry, I can't"},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-BfLoR4yJ1Qe9tN0sVb8Xk2Lm","object":"chat.completion.chunk","created":1749194150,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_07871e2ad8","choices":[{"index":0,"delta":{"refusal":" help with that."},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-BfLoR4yJ1Qe9tN0sVb8Xk2Lm","object":"chat.completion.chunk","created":1749194150,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_07871e2ad8","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}

data: {"id":"chatcmpl-BfLoR4yJ1Qe9tN0sVb8Xk2Lm","object":"chat.completion.chunk","created":1749194150,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_07871e2ad8","choices":[],"usage":{"prompt_tokens":95,"completion_tokens":10,"total_tokens":105,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}

data: [DONE]

"#;

/// Azure OpenAI: the prompt-filter results first (no choices, empty id and model), then the
/// answer, stopped by the content filter.
pub const OPENAI_CONTENT_FILTER: &str = r#"data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":false,"severity":"safe"}}}]}

data: {"choices":[{"content_filter_results":{},"delta":{"content":"","refusal":null,"role":"assistant"},"finish_reason":null,"index":0,"logprobs":null}],"created":1749194200,"id":"chatcmpl-BfLpA1b2C3d4E5f6G7h8I9j0","model":"gpt-4o-2024-11-20","object":"chat.completion.chunk","system_fingerprint":"fp_ee1d74bde0","usage":null}

data: {"choices":[{"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}},"delta":{"content":"Here is"},"finish_reason":null,"index":0,"logprobs":null}],"created":1749194200,"id":"chatcmpl-BfLpA1b2C3d4E5f6G7h8I9j0","model":"gpt-4o-2024-11-20","object":"chat.completion.chunk","system_fingerprint":"fp_ee1d74bde0","usage":null}

data: {"choices":[{"content_filter_results":{"violence":{"filtered":true,"severity":"medium"}},"delta":{},"finish_reason":"content_filter","index":0,"logprobs":null}],"created":1749194200,"id":"chatcmpl-BfLpA1b2C3d4E5f6G7h8I9j0","model":"gpt-4o-2024-11-20","object":"chat.completion.chunk","system_fingerprint":"fp_ee1d74bde0","usage":null}

data: {"choices":[],"created":1749194200,"id":"chatcmpl-BfLpA1b2C3d4E5f6G7h8I9j0","model":"gpt-4o-2024-11-20","object":"chat.completion.chunk","system_fingerprint":"fp_ee1d74bde0","usage":{"completion_tokens":3,"prompt_tokens":40,"total_tokens":43,"prompt_tokens_details":{"cached_tokens":0}}}

data: [DONE]

"#;

/// A server error after the first tokens: OpenAI's error chunk.
pub const OPENAI_ERROR: &str = r#"data: {"id":"chatcmpl-BfLqE7tYh2Ws1Xc0Vb9Nm8Kj","object":"chat.completion.chunk","created":1749194250,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-BfLqE7tYh2Ws1Xc0Vb9Nm8Kj","object":"chat.completion.chunk","created":1749194250,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"content":"Once upon"},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}

"#;

/// The connection dropped in the middle of a chunk.
pub const OPENAI_CUT: &str = r#"data: {"id":"chatcmpl-BfLrT5gH3jK9lZ0xCv2Bn4Mq","object":"chat.completion.chunk","created":1749194300,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-BfLrT5gH3jK9lZ0xCv2Bn4Mq","object":"chat.completion.chunk","created":1749194300,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"content":"Once upon"},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-BfLrT5gH3jK9lZ0xCv2Bn4Mq","object":"chat.completion.chunk","created":1749194300,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"content":" a ti"#;
