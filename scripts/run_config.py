#!/usr/bin/env python3
"""Writes the Envoy config `make run` starts: a shipped config (envoy.yaml, the native module, by
default; envoy.wasm.yaml with --config) with the demo's tenants, keys, limits, prices, guardrails
and flow control added to the filter's configuration, so that every feature shows. Keys, tenants
and budgets made at run time through the picker's admin API (`sluice-admin`) work too: the filter
pulls them from the picker every second (`quotas.tenancy`) and reports spend back. With --cluster
the limits are shared by several Envoys through the picker and Redis, and instance N > 0 has its
listener and admin ports moved up by N.

Usage: scripts/run_config.py [--config FILE] [--access-json PATH] [--otlp HOST:PORT]
                             N [--cluster] > .run/envoy-N.yaml
       scripts/run_config.py [--config FILE] --filter-json [--cluster]
                               (the filter's configuration only; the demo's e2e test loads it)

--access-json: where the JSON access log goes (the shipped configs write /tmp/sluice-access.json).
--otlp: the OpenTelemetry collector (OTLP/gRPC) the access logger and tracer send to (shipped:
127.0.0.1:4317, the OTLP port; with nothing there, only the records are lost).

The keys are demo keys for a local gateway: the config holds only their SHA-256, as a real
deployment's would.
"""

import hashlib
import json
import sys

# Two demo tenants: `demo` with room for trying things, `trial` with a limit small enough to
# show a 429 after a few requests.
KEYS = [
    ("sk-sluice-demo", "demo", {"requests_per_minute": 60, "tokens_per_minute": 200000}),
    ("sk-sluice-trial", "trial", {"requests_per_minute": 3}),
]


# Demo prices, USD per million tokens (what requests cost: budgets, the cost metric, spend).
PRICES = {
    "meta-llama/Llama-3.1-8B-Instruct": {"input": 0.2, "output": 0.6},
    "Qwen/Qwen2.5-7B-Instruct": {"input": 0.1, "output": 0.3},
    "gpt-4.1": {"input": 2.0, "output": 8.0},
    "claude-sonnet-4-5": {"input": 3.0, "output": 15.0},
}


def quotas(cluster):
    config = {
        "identity": {"source": "api_key"},
        "keys": [
            {"sha256": hashlib.sha256(key.encode()).hexdigest(), "tenant": tenant}
            for key, tenant, _ in KEYS
        ],
        "tenants": {tenant: {"limits": limits} for _, tenant, limits in KEYS},
        "prices": PRICES,
        # Keys, tenants and limits managed at run time (the picker's admin API), pulled from the
        # picker's /tenancy/snapshot every refresh_ms; spend is reported on the same tick.
        "tenancy": {"picker_cluster": "sluice_picker", "refresh_ms": 1000},
    }
    if cluster:
        config["fail_policy"] = "open"
        config["cluster"] = {"picker_cluster": "sluice_picker", "sync_ms": 100, "stale_after_ms": 1000}
    return config


def replace_once(text, old, new):
    if text.count(old) != 1:
        sys.exit(f"{CONFIG} must contain {old!r} exactly once")
    return text.replace(old, new)


def filter_block(lines):
    """Where the filter's JSON is: the block under `value: &sluice_config |` (the upstream filter
    reads the same block through its YAML alias), up to the first line indented no
    deeper. Returns (first line, end, indent of `value: |`)."""
    start = next(i for i, line in enumerate(lines) if line.strip() == "value: &sluice_config |")
    indent = len(lines[start]) - len(lines[start].lstrip())
    end = next(
        i
        for i in range(start + 1, len(lines))
        if lines[i].strip() and len(lines[i]) - len(lines[i].lstrip()) <= indent
    )
    return start, end, indent


def filter_config(lines, cluster):
    start, end, _ = filter_block(lines)
    config = json.loads("\n".join(lines[start + 1 : end]))
    config["quotas"] = quotas(cluster)
    # The default rule set: secrets and personal data redacted in requests and responses.
    config["guardrails"] = {}
    # Flow control with room for 4 requests per replica, so that a handful of requests at once
    # to one pool shows requests held in Envoy (the dashboard's queue row; make dashboard-check).
    config["flow_control"] = {"endpoint_capacity": 4}
    return config


# The shipped config to start from (--config).
CONFIG = "envoy.yaml"


def envoy_lines():
    return open(CONFIG, encoding="utf-8").read().split("\n")


# The JSON access log's path and the collector's endpoint in the shipped configs.
SHIPPED_ACCESS_JSON = "path: /tmp/sluice-access.json"
SHIPPED_OTLP = "address: 127.0.0.1, port_value: 4317 }"


def render(instance, cluster, access_json=None, otlp=None):
    lines = envoy_lines()
    config = filter_config(lines, cluster)
    start, end, indent = filter_block(lines)
    pad = " " * (indent + 2)
    block = [pad + line for line in json.dumps(config, indent=2).split("\n")]
    text = "\n".join(lines[: start + 1] + block + lines[end:])
    if access_json:
        text = replace_once(text, SHIPPED_ACCESS_JSON, f"path: {access_json}")
    if otlp:
        host, _, port = otlp.rpartition(":")
        if not host or not port.isdigit():
            sys.exit(f"--otlp wants HOST:PORT, not {otlp!r}")
        text = replace_once(text, SHIPPED_OTLP, f"address: {host}, port_value: {port} }}")
    if instance:
        text = replace_once(text, "port_value: 9901", f"port_value: {9901 + instance}")
        text = replace_once(text, "port_value: 10000", f"port_value: {10000 + instance}")
    return text


def main():
    global CONFIG
    args = sys.argv[1:]
    options = {}
    while args[:1] in (["--config"], ["--access-json"], ["--otlp"]) and len(args) > 1:
        options[args[0]] = args[1]
        args = args[2:]
    CONFIG = options.get("--config", CONFIG)
    if args[:1] == ["--filter-json"] and args[1:] in ([], ["--cluster"]):
        print(json.dumps(filter_config(envoy_lines(), args[1:] == ["--cluster"]), indent=2))
        return
    if not args or not args[0].isdigit() or args[1:] not in ([], ["--cluster"]):
        sys.exit(__doc__)
    sys.stdout.write(render(int(args[0]), args[1:] == ["--cluster"],
                            options.get("--access-json"), options.get("--otlp")))


if __name__ == "__main__":
    main()
