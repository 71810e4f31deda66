#!/usr/bin/env python3
"""Writes envoy.yaml for instance N of the `SLUICE_CLUSTER=1 make run` demo: the shipped config
with per-tenant quotas in cluster mode added to the filter's configuration, and for N > 0 the
listener and admin ports moved up by N, so that several Envoys share one limit through the
picker and Redis on one machine.

Usage: scripts/cluster_envoy.py N > .run/envoy-N.yaml
"""

import json
import sys

# The demo's quotas: the tenant is the x-tenant header, 10 requests per minute each, shared by
# every instance; a request without the header gets 401.
QUOTAS = {
    "identity": {"source": "header", "tenant_header": "x-tenant"},
    "default_tenant": {"limits": {"requests_per_minute": 10}},
    "fail_policy": "open",
    "cluster": {"picker_cluster": "sluice_picker", "sync_ms": 100, "stale_after_ms": 1000},
}


def replace_once(text, old, new):
    if text.count(old) != 1:
        sys.exit(f"envoy.yaml must contain {old!r} exactly once")
    return text.replace(old, new)


def main():
    instance = int(sys.argv[1])
    lines = open("envoy.yaml", encoding="utf-8").read().split("\n")
    # The filter's JSON is the block under `value: |`, up to the first line indented no deeper.
    start = next(i for i, line in enumerate(lines) if line.strip() == "value: |")
    indent = len(lines[start]) - len(lines[start].lstrip())
    end = next(
        i
        for i in range(start + 1, len(lines))
        if lines[i].strip() and len(lines[i]) - len(lines[i].lstrip()) <= indent
    )
    config = json.loads("\n".join(lines[start + 1 : end]))
    config["quotas"] = QUOTAS
    pad = " " * (indent + 2)
    block = [pad + line for line in json.dumps(config, indent=2).split("\n")]
    text = "\n".join(lines[: start + 1] + block + lines[end:])
    text = replace_once(text, "port_value: 9901", f"port_value: {9901 + instance}")
    text = replace_once(text, "port_value: 10000", f"port_value: {10000 + instance}")
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
