#!/usr/bin/env python3
"""What each proxy-wasm mechanism and each Sluice build costs per request in Envoy
(`make bench-host-cost`).

Starts the benchmark's mock upstream (bench/upstream.yaml), plain Envoy (the shipped envoy.wasm.yaml
without the filter), one Envoy per probe variant (the shipped envoy.wasm.yaml with the probe filter of
this directory and a configuration bit mask, see src/probe.rs), then for each Sluice build (the
Wasm build from the shipped envoy.wasm.yaml, the native dynamic module from the shipped
envoy.yaml) Envoy + Sluice as shipped (its picker is not started, so no replica is picked) and
Envoy + Sluice with the configuration `make bench` measures (bench/src/sluice_config.rs: every
feature on), then the same without quotas, without guardrails and without picking, so each
feature's cost shows as the difference. No picker runs, so picking only tries (and falls back to
Envoy's choice): its cost here is the attempt's. Then, interleaved and
repeated, loads each with wrk (a 1 KB chat body, 8 connections) while `perf stat -e task-clock`
measures the Envoy process, and prints the median CPU time per request and its difference to
plain Envoy. CPU time per request is steadier than latency on a shared machine, but still noisy:
differences under ~3 us are not significant.
"""
import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENVOY = os.path.join(ROOT, ".venv/bin/envoy")
PROBE_WASM = os.path.join(ROOT, "target/wasm32-wasip1/wasm-release/sluice_host_cost.wasm")
SLUICE_WASM = os.path.join(ROOT, "target/wasm32-wasip1/wasm-release/sluice_wasm.wasm")
# The native module; envoy.yaml names it (`sluice_native`) and Envoy finds lib<name>.so in the
# directory of ENVOY_DYNAMIC_MODULES_SEARCH_PATH.
SLUICE_NATIVE = os.path.join(ROOT, "target/native-release/libsluice_native.so")

# name, bit mask, what it adds (bits as in src/probe.rs `Step`)
VARIANTS = [
    ("loaded", 0, "the filter loaded, every callback a no-op"),
    ("5 gets", 1 << 0, "+ 5 get_map_value (present headers)"),
    ("1 get_map", 1 << 1, "+ 1 get_map (all headers)"),
    ("3 absent gets", 1 << 7, "+ 3 get_map_value (absent headers)"),
    ("3 removes", 1 << 8, "+ 3 remove_map_value (absent headers)"),
    ("counter", 1 << 9, "+ 1 increment_metric"),
    ("clock", 1 << 10, "+ 1 get_current_time"),
    ("shared data", 1 << 11, "+ 1 get_shared_data + 1 set_shared_data"),
    ("17 filter-state writes", 1 << 12, "+ 17 set_property (the decision fields, issue 17)"),
    ("pause", 1 << 2, "+ hold headers, buffer the body"),
    ("pause+read", (1 << 2) | (1 << 3), "+ hold, buffer and read the body"),
    ("pause+read+1 set", (1 << 2) | (1 << 3) | (1 << 4), "+ ... and 1 set_map_value"),
    ("pause+read+3 sets", (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5), "+ ... and 3 set_map_value"),
    ("...+clear_route_cache", (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6),
     "+ ... and clear_route_cache"),
]


# The benchmark's API key (bench/src/procs.rs API_KEY): the quota configuration knows its hash.
API_KEY = "sk-sluice-bench-0f3c9a7e5d2b4186a9e07c1d"


def bench_configuration():
    """FILTER_CONFIGURATION of bench/src/sluice_config.rs, as a dict."""
    text = open(os.path.join(ROOT, "bench/src/sluice_config.rs")).read()
    start = text.index('FILTER_CONFIGURATION: &str = r#"') + len('FILTER_CONFIGURATION: &str = r#"')
    return json.loads(text[start:text.index('"#;', start)])


def feature_setups(build):
    """(name, description, filter configuration JSON) for every feature on, then one off each."""
    full = bench_configuration()
    setups = [(f"Sluice {build}, every feature",
               "make bench's configuration (bench/src/sluice_config.rs)", json.dumps(full))]
    for feature in ("quotas", "guardrails", "picking"):
        config = {k: v for k, v in full.items() if k != feature}
        setups.append((f"  ... {build} without {feature}", f"the same, {feature} off",
                       json.dumps(config)))
    return setups


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chat_body():
    words = "please summarize the following quarterly report and list three key points".split()
    text = " ".join(words[i % len(words)] for i in range(140))
    return json.dumps({
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "messages": [{"role": "system", "content": "You are a careful assistant."},
                     {"role": "user", "content": text}],
        "max_tokens": 64,
    })


def filter_block_bounds(lines):
    """The lines of the `- name: sluice` HTTP filter in envoy.yaml."""
    start = next(i for i, l in enumerate(lines) if l.strip() == "- name: sluice")
    indent = len(lines[start]) - len(lines[start].lstrip())
    end = start + 1
    while end < len(lines):
        l = lines[end]
        depth = len(l) - len(l.lstrip())
        if l.strip() and (depth < indent or (depth == indent and l.lstrip().startswith("- "))):
            break
        end += 1
    return start, end


def render(template, admin, listener, upstream, wasm=None, mask=None, with_filter=True,
           configuration=None):
    text = template.replace("port_value: 9901", f"port_value: {admin}")
    # The JSON access log is formatted and written as shipped, to nowhere (not a growing file).
    text = text.replace("path: /tmp/sluice-access.json", "path: /dev/null")
    text = text.replace("port_value: 10000", f"port_value: {listener}")
    for port in ("8001", "8002", "8003"):
        text = text.replace(f"port_value: {port} ", f"port_value: {upstream} ")
    if wasm:
        text = text.replace("filename: target/wasm32-wasip1/wasm-release/sluice_wasm.wasm",
                            f"filename: {wasm}")
    if mask is not None:
        start = text.index("value: &sluice_config |")
        end = text.index("# Lets the filter")
        text = text[:start] + f'value: &sluice_config "{mask}"\n                ' + text[end:]
    if configuration is not None:
        text = replace_filter_configuration(text, configuration)
    if not with_filter:
        lines = text.split("\n")
        start, end = filter_block_bounds(lines)
        text = "\n".join(lines[:start] + lines[end:])
    return text


def replace_filter_configuration(text, configuration):
    """The filter's JSON configuration (the block under `value: &sluice_config |`, in either
    shipped config; the upstream filter reads it through the alias) replaced by
    `configuration`, on one line."""
    lines = text.split("\n")
    start = next(i for i, l in enumerate(lines) if l.strip() == "value: &sluice_config |")
    indent = len(lines[start]) - len(lines[start].lstrip())
    end = start + 1
    while end < len(lines) and (not lines[end].strip()
                                or len(lines[end]) - len(lines[end].lstrip()) > indent):
        end += 1
    line = " " * indent + "value: &sluice_config " + json.dumps(configuration)
    return "\n".join(lines[:start] + [line] + lines[end:])


def start_envoy(work, name, config, workers):
    path = os.path.join(work, f"{name}.yaml")
    with open(path, "w") as f:
        f.write(config)
    log = open(os.path.join(work, f"{name}.log"), "w")
    env = dict(os.environ, ENVOY_DYNAMIC_MODULES_SEARCH_PATH=os.path.dirname(SLUICE_NATIVE))
    return subprocess.Popen([ENVOY, "-c", path, "--disable-hot-restart", "--concurrency",
                             str(workers), "--log-level", "warn"], stdout=log, stderr=log,
                            start_new_session=True, env=env)


def wait_ready(admin, proc, name):
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{name} exited; see its log")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"{name} not ready")


def envoy_pid(proc):
    """The envoy binary's pid: .venv/bin/envoy is a Python wrapper that runs it as a child."""
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True)
    pids = children.stdout.split()
    return int(pids[0]) if pids else proc.pid


def cpu_us_per_request(pid, port, body_path, seconds, connections):
    stat_file = tempfile.mktemp()
    perf = subprocess.Popen(["perf", "stat", "-x,", "-e", "task-clock", "-p", str(pid), "-o",
                             stat_file, "--", "sleep", str(seconds + 0.6)])
    time.sleep(0.2)
    wrk = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", "-H", f"authorization: Bearer {API_KEY}", f"-d{seconds}s", "-s",
         os.path.join(ROOT, "bench/wrk.lua"), f"http://127.0.0.1:{port}/v1/chat/completions"],
        env=dict(os.environ, SLUICE_BENCH_BODY=body_path), capture_output=True, text=True)
    perf.wait()
    requests = int(re.search(r'"requests":(\d+)', wrk.stdout).group(1))
    refused = int(re.search(r'"errors_status":(\d+)', wrk.stdout).group(1))
    if refused:
        sys.exit(f"port {port}: {refused} of {requests} responses were not 2xx")
    with open(stat_file) as f:
        task_clock_ms = float(f.read().strip().split("\n")[-1].split(",")[0])
    os.unlink(stat_file)
    return task_clock_ms * 1000 / max(requests, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seconds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--no-probe", action="store_true",
                        help="skip the proxy-wasm probe variants: only the two Sluice builds")
    args = parser.parse_args()
    for path in (ENVOY, PROBE_WASM, SLUICE_WASM, SLUICE_NATIVE):
        if not os.path.exists(path):
            sys.exit(f"missing {path}: run `make bench-host-cost`, which builds it")
    template = open(os.path.join(ROOT, "envoy.wasm.yaml")).read()
    native_template = open(os.path.join(ROOT, "envoy.yaml")).read()
    work = tempfile.mkdtemp(prefix="sluice-host-cost-")
    body_path = os.path.join(work, "chat.json")
    with open(body_path, "w") as f:
        f.write(chat_body())
    procs = []
    try:
        upstream_text = open(os.path.join(ROOT, "bench/upstream.yaml")).read()
        up_admin, up_port = free_port(), free_port()
        parts = upstream_text.split("port_value: 0")
        assert len(parts) == 3, "bench/upstream.yaml: expected two `port_value: 0`"
        upstream_text = f"{parts[0]}port_value: {up_admin}{parts[1]}port_value: {up_port}{parts[2]}"
        upstream = start_envoy(work, "upstream", upstream_text, 1)
        procs.append(upstream)
        wait_ready(up_admin, upstream, "upstream")
        # (name, mask, description, the shipped config it starts from, render options)
        setups = [("plain Envoy", None, "no filter", template, dict(with_filter=False))]
        if not args.no_probe:
            setups += [(n, m, d, template, dict(wasm=PROBE_WASM, mask=m)) for n, m, d in VARIANTS]
        setups.append(("Envoy + Sluice Wasm", None,
                       "the shipped filter and config, envoy.wasm.yaml (no picker)",
                       template, dict(wasm=SLUICE_WASM)))
        setups += [(n, None, d, template, dict(wasm=SLUICE_WASM, configuration=c))
                   for n, d, c in feature_setups("Wasm")]
        setups.append(("Envoy + Sluice native", None,
                       "the shipped module and config, envoy.yaml (no picker)",
                       native_template, dict()))
        setups += [(n, None, d, native_template, dict(configuration=c))
                   for n, d, c in feature_setups("native")]
        running = []
        for name, _mask, description, shipped, options in setups:
            admin, port = free_port(), free_port()
            safe = re.sub(r"[^a-z0-9]+", "-", name.lower())
            proc = start_envoy(work, safe, render(shipped, admin, port, up_port, **options), 2)
            procs.append(proc)
            wait_ready(admin, proc, name)
            running.append((name, description, port, envoy_pid(proc)))
        # V8 compiles hot Wasm functions again with its optimizing tier after a while: warm up.
        print("warming up", file=sys.stderr)
        for _name, _description, port, pid in running:
            cpu_us_per_request(pid, port, body_path, 1, args.connections)
        samples = {name: [] for name, *_ in running}
        for repeat in range(args.repeats):
            print(f"run {repeat + 1}/{args.repeats}", file=sys.stderr)
            for name, _description, port, pid in running:
                samples[name].append(cpu_us_per_request(pid, port, body_path, args.seconds,
                                                        args.connections))
        base = statistics.median(samples["plain Envoy"])
        print(f"| setup | what it does per request | CPU µs/request (median of {args.repeats}) "
              "| added over plain Envoy |")
        print("|---|---|---:|---:|")
        for name, description, _port, _pid in running:
            median = statistics.median(samples[name])
            added = "–" if name == "plain Envoy" else f"{median - base:+.1f}"
            print(f"| {name} | {description} | {median:.1f} | {added} |")
    finally:
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in procs:
            proc.wait()


if __name__ == "__main__":
    main()
