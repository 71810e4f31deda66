"""Drives the gateway with the official OpenAI and Anthropic Python SDKs, changing nothing but
base_url, and prints one line per check. Run by tests/tests/sdks.rs against a live gateway.

usage: check_sdks.py GATEWAY_URL
"""

import sys

import anthropic
import openai

LLAMA = "meta-llama/Llama-3.1-8B-Instruct"


def main(base: str) -> None:
    oa = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)

    chat = oa.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Hello"}],
        max_tokens=4,
    )
    assert chat.choices[0].message.content, chat
    assert chat.usage.completion_tokens == 4, chat.usage
    print("openai chat ok", chat.model)

    stream = oa.chat.completions.create(
        model=LLAMA,
        messages=[{"role": "user", "content": "Hello"}],
        max_tokens=4,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip(), chunks
    assert chunks[-1].usage.completion_tokens == 4, chunks[-1]
    print("openai chat stream ok", len(chunks), "chunks")

    models = [m.id for m in oa.models.list()]
    assert LLAMA in models and "gpt-4o" in models, models
    print("openai models ok", len(models))

    try:
        oa.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
        raise AssertionError("expected NotFoundError")
    except openai.NotFoundError as err:
        assert err.code == "model_not_found", err.body
    print("openai error ok")

    an = anthropic.Anthropic(base_url=base, api_key="unused", max_retries=0)
    message = an.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=4,
        system="Be brief.",
        messages=[{"role": "user", "content": "Hello"}],
    )
    assert message.content[0].text, message
    assert message.usage.output_tokens == 4, message.usage
    print("anthropic message ok", message.model)

    with an.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=4,
        messages=[{"role": "user", "content": "Hello"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.strip(), final
    assert final.usage.output_tokens == 4, final.usage
    print("anthropic stream ok")

    try:
        an.messages.create(model="nope", max_tokens=4, messages=[{"role": "user", "content": "x"}])
        raise AssertionError("expected NotFoundError")
    except anthropic.NotFoundError as err:
        assert err.body["error"]["type"] == "not_found_error", err.body
    print("anthropic error ok")


if __name__ == "__main__":
    main(sys.argv[1])
