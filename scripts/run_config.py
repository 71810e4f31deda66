#!/usr/bin/env python3
"""Writes the Envoy config `make run` starts: a shipped config (envoy.yaml, the native module, by
default; envoy.wasm.yaml with --config) with the demo's tenants, keys, limits and guardrails
added to the filter's configuration, so that every feature shows. Keys, tenants and budgets made
at run time through the picker's admin API (`sluice-admin`) work too: the filter pulls them from
the picker every second (`quotas.tenancy`) and reports spend back. With --cluster the limits are
shared by several Envoys through the picker and Redis, and instance N > 0 has its listener and
admin ports moved up by N.

Usage: scripts/run_config.py [--config FILE] N [--cluster] > .run/envoy-N.yaml
       scripts/run_config.py [--config FILE] --filter-json [--cluster]
                               (the filter's configuration only; the demo's e2e test loads it)

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


def quotas(cluster):
    config = {
        "identity": {"source": "api_key"},
        "keys": [
            {"sha256": hashlib.sha256(key.encode()).hexdigest(), "tenant": tenant}
            for key, tenant, _ in KEYS
        ],
        "tenants": {tenant: {"limits": limits} for _, tenant, limits in KEYS},
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
    return config


# The shipped config to start from (--config).
CONFIG = "envoy.yaml"


def envoy_lines():
    return open(CONFIG, encoding="utf-8").read().split("\n")


def render(instance, cluster):
    lines = envoy_lines()
    config = filter_config(lines, cluster)
    start, end, indent = filter_block(lines)
    pad = " " * (indent + 2)
    block = [pad + line for line in json.dumps(config, indent=2).split("\n")]
    text = "\n".join(lines[: start + 1] + block + lines[end:])
    if instance:
        text = replace_once(text, "port_value: 9901", f"port_value: {9901 + instance}")
        text = replace_once(text, "port_value: 10000", f"port_value: {10000 + instance}")
    return text


def main():
    global CONFIG
    args = sys.argv[1:]
    if args[:1] == ["--config"] and len(args) > 1:
        CONFIG = args[1]
        args = args[2:]
    if args[:1] == ["--filter-json"] and args[1:] in ([], ["--cluster"]):
        print(json.dumps(filter_config(envoy_lines(), args[1:] == ["--cluster"]), indent=2))
        return
    if not args or not args[0].isdigit() or args[1:] not in ([], ["--cluster"]):
        sys.exit(__doc__)
    sys.stdout.write(render(int(args[0]), args[1:] == ["--cluster"]))


if __name__ == "__main__":
    main()
