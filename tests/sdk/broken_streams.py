"""Streams one answer with the official OpenAI or Anthropic Python SDK (nothing changed but
base_url) from a provider that breaks the stream off after its first events, and checks what the
SDK makes of it: the first events arrive parsed, then iterating raises. Prints one line with the
number of events and the exception's type. Run by tests/tests/providers.rs.

usage: broken_streams.py GATEWAY_URL openai|anthropic MODEL ANSWERING_MODEL
"""

import sys

import anthropic
import openai

CLIENT_KEY = "sk-client-key-not-for-providers"
PROMPT = "Tell me a long story."


def stream_openai(base: str, model: str, answering: str) -> None:
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=CLIENT_KEY, max_retries=0)
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": PROMPT}],
        max_tokens=50,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = []
    try:
        for chunk in stream:
            assert chunk.model == answering, chunk
            chunks.append(chunk)
    except Exception as error:  # noqa: BLE001 - which one the SDK raises is the finding
        assert chunks, f"nothing arrived before {error!r}"
        assert all(c.usage is None for c in chunks), chunks
        assert all(c.choices[0].finish_reason is None for c in chunks), chunks
        print(f"openai stream broke off after {len(chunks)} chunks: {type(error).__module__}.{type(error).__name__}")
        return
    raise AssertionError(f"the stream ended normally after {len(chunks)} chunks")


def stream_anthropic(base: str, model: str, answering: str) -> None:
    client = anthropic.Anthropic(base_url=base, api_key=CLIENT_KEY, max_retries=0)
    events = []
    try:
        with client.messages.stream(
            model=model,
            max_tokens=50,
            messages=[{"role": "user", "content": PROMPT}],
        ) as stream:
            for event in stream:
                if event.type == "message_start":
                    assert event.message.model == answering, event
                events.append(event.type)
    except Exception as error:  # noqa: BLE001 - which one the SDK raises is the finding
        assert events and events[0] == "message_start", events
        assert "message_stop" not in events and "message_delta" not in events, events
        print(f"anthropic stream broke off after {len(events)} events: {type(error).__module__}.{type(error).__name__}")
        return
    raise AssertionError(f"the stream ended normally: {events}")


def main(base: str, sdk: str, model: str, answering: str) -> None:
    if sdk == "openai":
        stream_openai(base, model, answering)
    elif sdk == "anthropic":
        stream_anthropic(base, model, answering)
    else:
        raise SystemExit(f"unknown SDK {sdk!r}")


if __name__ == "__main__":
    main(*sys.argv[1:5])
