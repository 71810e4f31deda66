"""Drives the official OpenAI and Anthropic Python SDKs, with their default retry settings, into a
small requests-per-minute limit, one SDK per thread (each with its own key, so its own limit), and
prints what each received: one JSON object, by SDK, of every response in order (status and every
copy of each rate-limit header), then exits non-zero if a call raised. Run by tests/tests/quotas.rs, which holds this against the times
the requests reached the gateway (Envoy's access log).

usage: rate_limit_retries.py GATEWAY_URL CALLS OPENAI_KEY ANTHROPIC_KEY
CALLS is one more than the limit: the last call is refused once (or more) and retried by the SDK.
"""

import json
import sys
import threading

import anthropic
import openai

LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
RATE_LIMIT_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-", "retry-after")


def recorder(records):
    """An httpx response hook: the status and every copy of each rate-limit header."""

    def hook(response):
        headers = response.headers
        names = sorted({n.lower() for n in headers.keys() if n.lower().startswith(RATE_LIMIT_PREFIXES)})
        records.append({"status": response.status_code, "headers": {n: headers.get_list(n) for n in names}})

    return hook


def run_openai(base, calls, key, out):
    records = out["openai"] = []
    http = openai.DefaultHttpxClient(event_hooks={"response": [recorder(records)]})
    # Default retries: nothing but the base URL, the key and the hook (which keeps the SDK's
    # own client defaults) is set.
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, http_client=http)
    for _ in range(calls):
        client.chat.completions.create(model=LLAMA, messages=[{"role": "user", "content": "Hi"}], max_tokens=1)


def run_anthropic(base, calls, key, out):
    records = out["anthropic"] = []
    http = anthropic.DefaultHttpxClient(event_hooks={"response": [recorder(records)]})
    client = anthropic.Anthropic(base_url=base, api_key=key, http_client=http)
    for _ in range(calls):
        client.messages.create(model=LLAMA, max_tokens=1, messages=[{"role": "user", "content": "Hi"}])


def main(base, calls, openai_key, anthropic_key):
    out = {}
    errors = []

    def guarded(target, *args):
        try:
            target(*args)
        except Exception as err:  # reported below, after both threads are done
            errors.append(f"{target.__name__}: {err!r}")

    threads = [
        threading.Thread(target=guarded, args=(run_openai, base, calls, openai_key, out)),
        threading.Thread(target=guarded, args=(run_anthropic, base, calls, anthropic_key, out)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # What was received, also when a call failed: it shows why.
    print(json.dumps(out))
    if errors:
        raise SystemExit("; ".join(errors))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4])
