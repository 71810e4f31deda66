"""Errors Envoy answers itself surface through the official OpenAI and Anthropic Python SDKs as
their own server-error types, with the code and type readable. Run by tests/tests/envoy_errors.rs
against a gateway whose pool for MODEL has no healthy replica; prints one line per check.

usage: check_envoy_errors.py GATEWAY_URL MODEL
"""

import sys

import anthropic
import openai


def main(base: str, model: str) -> None:
    oa = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
    try:
        oa.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
        raise AssertionError("expected InternalServerError")
    except openai.InternalServerError as err:
        assert err.status_code == 503, err
        assert err.code == "no_healthy_upstream", err.body
        assert err.type == "server_error", err.body
    print("openai 503 no_healthy_upstream ok")

    an = anthropic.Anthropic(base_url=base, api_key="unused", max_retries=0)
    try:
        an.messages.create(model=model, max_tokens=4, messages=[{"role": "user", "content": "x"}])
        raise AssertionError("expected InternalServerError")
    except anthropic.InternalServerError as err:
        assert err.status_code == 503, err
        assert err.body["error"]["type"] == "api_error", err.body
    print("anthropic 503 api_error ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
