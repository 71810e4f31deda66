#!/usr/bin/env bash
# `make run`: simulated vLLM replicas in two pools, the picker and Envoy with the Sluice filter,
# in the foreground. Ctrl-C stops everything this script started. Logs are in .run/.
set -euo pipefail
cd "$(dirname "$0")/.."

LOGS=.run
mkdir -p "$LOGS"
pids=()

stop() {
    trap - EXIT INT TERM
    if [ "${#pids[@]}" -gt 0 ]; then
        kill "${pids[@]}" 2>/dev/null || true
        wait "${pids[@]}" 2>/dev/null || true
    fi
    echo "stopped: replicas, picker, envoy"
}
trap stop EXIT INT TERM

# Waits for `listening on` in a service's log, or shows the log and fails.
wait_listening() {
    local name=$1 log=$2 pid=$3
    for _ in $(seq 1 100); do
        grep -q '^listening on ' "$log" && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "$name did not start; its log ($log):" >&2
    tail -n 20 "$log" >&2
    exit 1
}

# The pools envoy.yaml routes to: Llama (with a LoRA adapter) on :8001-8002, Qwen on :8003.
start_replica() {
    local port=$1
    shift
    : >"$LOGS/replica-$port.log"
    target/release/sluice-simulator --listen "127.0.0.1:$port" "$@" >"$LOGS/replica-$port.log" 2>&1 &
    pids+=($!)
    wait_listening "replica :$port" "$LOGS/replica-$port.log" $!
}
start_replica 8001 --model meta-llama/Llama-3.1-8B-Instruct --lora sql-lora
start_replica 8002 --model meta-llama/Llama-3.1-8B-Instruct --lora sql-lora
start_replica 8003 --model Qwen/Qwen2.5-7B-Instruct

: >"$LOGS/picker.log"
target/release/sluice-picker --config picker.toml >"$LOGS/picker.log" 2>&1 &
pids+=($!)
wait_listening picker "$LOGS/picker.log" $!

# Process substitution rather than a pipe, so that $! is Envoy itself and `stop` reaches it.
.venv/bin/envoy -c envoy.yaml --concurrency 2 --disable-hot-restart \
    --log-level warn --component-log-level wasm:info > >(tee "$LOGS/envoy.log") 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
    curl -fs http://127.0.0.1:9901/ready >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fs http://127.0.0.1:9901/ready >/dev/null || { echo "envoy did not become ready" >&2; exit 1; }

cat <<'MSG'

Sluice is up.
  gateway     http://127.0.0.1:10000   (Envoy + Sluice filter)
  replicas    Llama-3.1-8B (+ sql-lora) on :8001, :8002; Qwen2.5-7B on :8003
  envoy admin http://127.0.0.1:9901    (stats: /stats?filter=wasmcustom)
  picker      http://127.0.0.1:9100/healthz

Try:
  curl -s http://127.0.0.1:10000/v1/chat/completions -H 'content-type: application/json' \
    -d '{"model":"meta-llama/Llama-3.1-8B-Instruct","messages":[{"role":"user","content":"Hello!"}]}'
  curl -sN http://127.0.0.1:10000/v1/chat/completions -H 'content-type: application/json' \
    -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello!"}],"stream":true}'
  curl -s http://127.0.0.1:10000/v1/models

Ctrl-C stops everything. Access log below; other logs in .run/.
MSG
wait
