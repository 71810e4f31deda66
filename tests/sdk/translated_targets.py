"""Drives the official OpenAI or Anthropic Python SDK, changing nothing but base_url, against a
model the gateway serves from a provider of the other API (the request and the answer translated
on the way), and prints one line per check. Each call asks for text and a tool call (the
simulator's [[tool]] script), JSON twice and streamed twice with the same long prompt, so the
later calls find it in the provider's prefix cache and report cached input tokens. Run by
tests/tests/providers.rs against a live gateway.

usage: translated_targets.py GATEWAY_URL openai|anthropic MODEL ANSWERING_MODEL
MODEL is the name the client asks for; ANSWERING_MODEL the provider's model that answers (the
response's `model` must name it).
"""

import json
import sys

import anthropic
import openai

# A long system prompt: whole 16-token blocks of it are cached by the provider stand-in after
# the first call.
SYSTEM = " ".join(
    f"Rule {i}: answer questions about the weather briefly, name the city, and use the tool."
    for i in range(12)
)
TEXT = "Looking it up."
ARGUMENTS = {"city": "Paris"}
# The simulator answers the script in the last user message: TEXT, then one call of the first
# tool offered with ARGUMENTS.
USER = f"{TEXT}[[tool]]{json.dumps(ARGUMENTS)}"
TOOL = "get_weather"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
# The client's key to the gateway: a provider that saw it would answer 401.
CLIENT_KEY = "sk-client-key-not-for-providers"


def check_openai(base: str, model: str, answering: str) -> None:
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=CLIENT_KEY, max_retries=0)
    request = {
        "model": model,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}],
        "tools": [{"type": "function", "function": {"name": TOOL, "description": "Weather now.", "parameters": SCHEMA}}],
        "max_tokens": 64,
    }
    cached = []
    for call in range(2):
        chat = client.chat.completions.create(**request)
        assert chat.object == "chat.completion", chat
        assert chat.model == answering, chat.model
        choice = chat.choices[0]
        assert choice.finish_reason == "tool_calls", choice
        assert choice.message.role == "assistant", choice.message
        assert choice.message.content == TEXT, choice.message
        calls = choice.message.tool_calls
        assert len(calls) == 1 and calls[0].type == "function", calls
        assert calls[0].id, calls
        assert calls[0].function.name == TOOL, calls
        assert json.loads(calls[0].function.arguments) == ARGUMENTS, calls
        usage = chat.usage
        assert usage.prompt_tokens > 0 and usage.completion_tokens > 0, usage
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens, usage
        cached.append(usage.prompt_tokens_details.cached_tokens)
        assert cached[-1] <= usage.prompt_tokens, usage
        print(f"openai chat {call} ok model={chat.model} prompt={usage.prompt_tokens} "
              f"completion={usage.completion_tokens} cached={cached[-1]}")
    assert cached[0] == 0 and cached[1] > 0, cached
    print("openai chat cached ok")

    for call in range(2):
        stream = client.chat.completions.create(**request, stream=True, stream_options={"include_usage": True})
        chunks = list(stream)
        assert chunks, "no chunks"
        text = ""
        names = {}
        arguments = {}
        finish = None
        for chunk in chunks:
            assert chunk.object == "chat.completion.chunk", chunk
            assert chunk.model == answering, chunk.model
            for choice in chunk.choices:
                delta = choice.delta
                text += delta.content or ""
                for part in delta.tool_calls or []:
                    if part.function and part.function.name:
                        names[part.index] = part.function.name
                    if part.function and part.function.arguments:
                        arguments[part.index] = arguments.get(part.index, "") + part.function.arguments
                finish = choice.finish_reason or finish
        assert text == TEXT, text
        assert names == {0: TOOL}, names
        assert json.loads(arguments[0]) == ARGUMENTS, arguments
        assert finish == "tool_calls", finish
        usage = chunks[-1].usage
        assert usage is not None and not chunks[-1].choices, chunks[-1]
        assert usage.prompt_tokens > 0 and usage.completion_tokens > 0, usage
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens, usage
        assert 0 < usage.prompt_tokens_details.cached_tokens <= usage.prompt_tokens, usage
        print(f"openai stream {call} ok chunks={len(chunks)} cached={usage.prompt_tokens_details.cached_tokens}")


def check_anthropic(base: str, model: str, answering: str) -> None:
    client = anthropic.Anthropic(base_url=base, api_key=CLIENT_KEY, max_retries=0)
    request = {
        "model": model,
        "max_tokens": 64,
        "system": SYSTEM,
        "tools": [{"name": TOOL, "description": "Weather now.", "input_schema": SCHEMA}],
        "messages": [{"role": "user", "content": USER}],
    }

    def check_message(message, what):
        assert message.type == "message" and message.role == "assistant", message
        assert message.model == answering, message.model
        assert message.stop_reason == "tool_use", message
        kinds = [block.type for block in message.content]
        assert kinds == ["text", "tool_use"], kinds
        assert message.content[0].text == TEXT, message.content
        use = message.content[1]
        assert use.name == TOOL and use.input == ARGUMENTS and use.id, use
        usage = message.usage
        assert usage.input_tokens > 0 and usage.output_tokens > 0, usage
        cached = usage.cache_read_input_tokens or 0
        print(f"anthropic {what} ok model={message.model} input={usage.input_tokens} "
              f"output={usage.output_tokens} cached={cached}")
        return cached

    cached = [check_message(client.messages.create(**request), f"message {call}") for call in range(2)]
    assert cached[0] == 0 and cached[1] > 0, cached
    print("anthropic message cached ok")

    for call in range(2):
        with client.messages.stream(**request) as stream:
            events = [event.type for event in stream]
            final = stream.get_final_message()
        assert events[0] == "message_start" and events[-1] == "message_stop", events
        assert "content_block_delta" in events and "message_delta" in events, events
        assert check_message(final, f"stream {call}") > 0, final.usage


def main(base: str, sdk: str, model: str, answering: str) -> None:
    if sdk == "openai":
        check_openai(base, model, answering)
    elif sdk == "anthropic":
        check_anthropic(base, model, answering)
    else:
        raise SystemExit(f"unknown SDK {sdk!r}")


if __name__ == "__main__":
    main(*sys.argv[1:5])
