"""Drives provider-mode simulators with the official OpenAI and Anthropic Python SDKs: the
shapes they parse (usage with cached tokens, tool calls, thinking, streams), the typed errors
they raise (keys, models, 429, 529) and the rate-limit headers. Prints one line per check.
Run by simulator/tests/sdks.rs.

usage: provider_sdks.py OPENAI_URL OPENAI_KEY ANTHROPIC_URL ANTHROPIC_KEY MODEL
"""

import json
import sys
import urllib.request

import anthropic
import openai

# With "user", 304 bytes: 76 prompt tokens, 64 of them in whole 16-token cache blocks.
LONG = "x" * 300


def set_fault(base: str, fault: dict) -> None:
    request = urllib.request.Request(
        f"{base}/admin/faults", data=json.dumps(fault).encode(), method="PUT"
    )
    with urllib.request.urlopen(request) as response:
        assert response.status == 200, response.read()


def check_openai(base: str, key: str, model: str) -> None:
    oa = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)
    messages = [{"role": "user", "content": LONG}]

    first = oa.chat.completions.create(model=model, messages=messages, max_tokens=4)
    assert first.model == model, first
    assert first.choices[0].message.content, first
    assert first.usage.prompt_tokens == 76, first.usage
    assert first.usage.prompt_tokens_details.cached_tokens == 0, first.usage
    again = oa.chat.completions.create(model=model, messages=messages, max_tokens=4)
    assert again.usage.prompt_tokens_details.cached_tokens == 64, again.usage
    print("openai usage with cached tokens ok")

    chunks = list(
        oa.chat.completions.create(
            model=model,
            messages=messages,
            max_tokens=4,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage.prompt_tokens_details.cached_tokens == 64, chunks[-1]
    assert chunks[-1].usage.completion_tokens == 4, chunks[-1]
    print("openai stream ok", len(chunks), "chunks")

    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    script = [{"role": "user", "content": '[[echo]]Looking.[[tool]]{"city":"Paris"}'}]
    called = oa.chat.completions.create(model=model, messages=script, tools=tools)
    call = called.choices[0].message.tool_calls[0]
    assert called.choices[0].finish_reason == "tool_calls", called
    assert call.function.name == "lookup", call
    assert json.loads(call.function.arguments) == {"city": "Paris"}, call
    with oa.chat.completions.stream(model=model, messages=script, tools=tools) as stream:
        final = stream.get_final_completion()
    streamed_call = final.choices[0].message.tool_calls[0]
    assert json.loads(streamed_call.function.arguments) == {"city": "Paris"}, final
    assert final.choices[0].message.content == "Looking.", final
    print("openai tool calls ok")

    raw = oa.chat.completions.with_raw_response.create(model=model, messages=messages, max_tokens=1)
    for name in ("limit", "remaining", "reset"):
        for kind in ("requests", "tokens"):
            assert raw.headers.get(f"x-ratelimit-{name}-{kind}"), raw.headers
    print("openai rate-limit headers ok")

    try:
        openai.OpenAI(base_url=f"{base}/v1", api_key="sk-wrong", max_retries=0).models.list()
        raise AssertionError("expected AuthenticationError")
    except openai.AuthenticationError as err:
        assert err.code == "invalid_api_key", err.body
        assert "sk-wrong" not in str(err.body), err.body
    try:
        oa.chat.completions.create(model="no-such-model", messages=messages)
        raise AssertionError("expected NotFoundError")
    except openai.NotFoundError as err:
        assert err.code == "model_not_found", err.body
    set_fault(base, {"status": 429, "retry_after_s": 7, "count": 1})
    try:
        oa.chat.completions.create(model=model, messages=messages)
        raise AssertionError("expected RateLimitError")
    except openai.RateLimitError as err:
        assert err.code == "rate_limit_exceeded", err.body
        assert err.response.headers["retry-after-ms"] == "7000", err.response.headers
    set_fault(base, {"status": 503, "count": 1})
    retried = oa.with_options(max_retries=1).chat.completions.create(
        model=model, messages=messages, max_tokens=1
    )
    assert retried.choices[0].message.content, retried
    print("openai errors ok")


def check_anthropic(base: str, key: str, model: str) -> None:
    an = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0)
    messages = [{"role": "user", "content": LONG}]

    first = an.messages.create(model=model, max_tokens=4, messages=messages)
    assert first.model == model, first
    assert first.content[0].text, first
    assert first.usage.input_tokens == 76, first.usage
    assert first.usage.cache_read_input_tokens == 0, first.usage
    again = an.messages.create(model=model, max_tokens=4, messages=messages)
    assert again.usage.cache_read_input_tokens == 64, again.usage
    assert again.usage.input_tokens == 12, again.usage
    cached = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "y" * 300, "cache_control": {"type": "ephemeral"}}],
        }
    ]
    written = an.messages.create(model=model, max_tokens=4, messages=cached)
    assert written.usage.cache_creation_input_tokens == 64, written.usage
    print("anthropic usage with cache reads and writes ok")

    tools = [{"name": "lookup", "input_schema": {"type": "object"}}]
    script = [{"role": "user", "content": '[[reasoning]]Think.[[echo]]Looking.[[tool]]{"city":"Paris"}'}]
    with an.messages.stream(model=model, max_tokens=4, messages=script, tools=tools) as stream:
        final = stream.get_final_message()
    kinds = [block.type for block in final.content]
    assert kinds == ["thinking", "text", "tool_use"], final
    assert final.content[0].thinking == "Think.", final
    assert final.content[2].name == "lookup", final
    assert final.content[2].input == {"city": "Paris"}, final
    assert final.stop_reason == "tool_use", final
    print("anthropic stream with thinking and tool use ok")

    raw = an.messages.with_raw_response.create(model=model, max_tokens=1, messages=messages)
    for kind in ("requests", "tokens", "input-tokens", "output-tokens"):
        for name in ("limit", "remaining", "reset"):
            assert raw.headers.get(f"anthropic-ratelimit-{kind}-{name}"), raw.headers
    print("anthropic rate-limit headers ok")

    try:
        anthropic.Anthropic(base_url=base, api_key="sk-ant-wrong", max_retries=0).messages.create(
            model=model, max_tokens=1, messages=messages
        )
        raise AssertionError("expected AuthenticationError")
    except anthropic.AuthenticationError as err:
        assert err.body["error"]["type"] == "authentication_error", err.body
        assert "sk-ant-wrong" not in str(err.body), err.body
    try:
        an.messages.create(model="claude-nope", max_tokens=1, messages=messages)
        raise AssertionError("expected NotFoundError")
    except anthropic.NotFoundError as err:
        assert err.body["error"]["type"] == "not_found_error", err.body
    set_fault(base, {"status": 429, "retry_after_s": 7, "count": 1})
    try:
        an.messages.create(model=model, max_tokens=1, messages=messages)
        raise AssertionError("expected RateLimitError")
    except anthropic.RateLimitError as err:
        assert err.body["error"]["type"] == "rate_limit_error", err.body
        assert err.response.headers["retry-after"] == "7", err.response.headers
    set_fault(base, {"status": 529, "count": 1})
    try:
        an.messages.create(model=model, max_tokens=1, messages=messages)
        raise AssertionError("expected OverloadedError")
    except anthropic.OverloadedError as err:
        assert err.body["error"]["type"] == "overloaded_error", err.body
    print("anthropic errors ok")


if __name__ == "__main__":
    openai_url, openai_key, anthropic_url, anthropic_key, model = sys.argv[1:6]
    check_openai(openai_url, openai_key, model)
    check_anthropic(anthropic_url, anthropic_key, model)
