#!/usr/bin/env bash
# `make run`: simulated vLLM replicas in two pools, Redis, the picker and Envoy with the Sluice
# filter, in the foreground. Envoy runs the shipped config of the chosen build plus the demo's API
# keys, per-tenant limits and default guardrails (scripts/run_config.py). Ctrl-C stops everything
# this script started; so does any of them exiting. Logs are in .run/.
#
# SLUICE_HOST=native (the default; `make run`): envoy.yaml, the native module
#   (target/native-release/libsluice_native.so, found through ENVOY_DYNAMIC_MODULES_SEARCH_PATH).
# SLUICE_HOST=wasm (`make run HOST=wasm`): envoy.wasm.yaml, the .wasm in V8.
# SLUICE_CLUSTER=1 make run: two Envoys (:10000 and :10001) whose filters share every tenant's
# limits through the picker and Redis.
set -euo pipefail
cd "$(dirname "$0")/.."

LOGS=.run
# The port picker.toml's [quota] redis_url points at.
REDIS_PORT=6390
CLUSTER=${SLUICE_CLUSTER:-}
HOST=${SLUICE_HOST:-native}
case "$HOST" in
    native)
        ENVOY_CONFIG=envoy.yaml
        # envoy.yaml names the module (sluice_native); Envoy loads lib<name>.so from here.
        export ENVOY_DYNAMIC_MODULES_SEARCH_PATH="$PWD/target/native-release"
        ;;
    wasm) ENVOY_CONFIG=envoy.wasm.yaml ;;
    *)
        echo "SLUICE_HOST must be native or wasm, not $HOST" >&2
        exit 2
        ;;
esac
# The filter's own log lines (configuration, failures) come from either host's component.
ENVOY_LOG_LEVELS=wasm:info,dynamic_modules:info
mkdir -p "$LOGS"
pids=()
# What each started process is, by pid, for saying which one exited.
declare -A names=()

stop() {
    trap - EXIT INT TERM
    if [ "${#pids[@]}" -gt 0 ]; then
        kill "${pids[@]}" 2>/dev/null || true
        wait "${pids[@]}" 2>/dev/null || true
    fi
    echo "stopped: replicas, redis, picker, envoy"
}
trap stop EXIT
trap 'exit 130' INT TERM

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

# The pools the shipped configs route to: Llama (with a LoRA adapter) on :8001-8002, Qwen on :8003.
start_replica() {
    local port=$1
    shift
    : >"$LOGS/replica-$port.log"
    target/release/sluice-simulator --listen "127.0.0.1:$port" "$@" >"$LOGS/replica-$port.log" 2>&1 &
    pids+=($!)
    names[$!]="replica :$port ($LOGS/replica-$port.log)"
    wait_listening "replica :$port" "$LOGS/replica-$port.log" $!
}
start_replica 8001 --model meta-llama/Llama-3.1-8B-Instruct --lora sql-lora
start_replica 8002 --model meta-llama/Llama-3.1-8B-Instruct --lora sql-lora
start_replica 8003 --model Qwen/Qwen2.5-7B-Instruct
# Two hosted providers, simulated: an OpenAI-shaped one on :8101 and an Anthropic-shaped one on
# :8102, with their own keys (the gateway holds them; clients never see them). `gpt-4.1` is served
# by chains over both (envoy.yaml); faults can be switched on while traffic flows:
#   curl -X PUT localhost:8101/admin/faults -d '{"status":429,"retry_after_s":10}'
start_replica 8101 --provider openai --api-key sk-standin-openai --model gpt-4.1
start_replica 8102 --provider anthropic --api-key sk-standin-anthropic --model claude-sonnet-4-5

# Redis for the cluster-wide quota counters: no persistence (the counters are rebuilt from every
# Envoy's own counts when it comes back empty), loopback only.
: >"$LOGS/redis.log"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --logfile "$LOGS/redis.log" >/dev/null 2>&1 &
pids+=($!)
names[$!]="redis ($LOGS/redis.log)"
for _ in $(seq 1 100); do
    grep -q 'Ready to accept connections' "$LOGS/redis.log" && break
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.1
done
grep -q 'Ready to accept connections' "$LOGS/redis.log" || {
    echo "redis did not start (is port $REDIS_PORT free?); its log:" >&2
    tail -n 20 "$LOGS/redis.log" >&2
    exit 1
}

# The admin API's token (picker.toml's [admin] token_env): a development one unless set.
export SLUICE_ADMIN_TOKEN=${SLUICE_ADMIN_TOKEN:-dev-admin-token}
: >"$LOGS/picker.log"
target/release/sluice-picker --config picker.toml >"$LOGS/picker.log" 2>&1 &
pids+=($!)
names[$!]="picker ($LOGS/picker.log)"
wait_listening picker "$LOGS/picker.log" $!

# Waits for an Envoy's admin /ready.
wait_ready() {
    local admin=$1
    for _ in $(seq 1 100); do
        curl -fs "http://127.0.0.1:$admin/ready" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "envoy (admin :$admin) did not become ready" >&2
    exit 1
}

if [ -n "$CLUSTER" ]; then
    # Two instances of the demo config with quotas in cluster mode; the second on the next
    # ports. Their access logs go to their own files.
    for i in 0 1; do
        scripts/run_config.py --config "$ENVOY_CONFIG" "$i" --cluster >"$LOGS/envoy-$i.yaml"
        .venv/bin/envoy -c "$LOGS/envoy-$i.yaml" --concurrency 2 --disable-hot-restart \
            --log-level warn --component-log-level "$ENVOY_LOG_LEVELS" >"$LOGS/envoy-$i.log" 2>&1 &
        pids+=($!)
        names[$!]="envoy $i ($LOGS/envoy-$i.log)"
        wait_ready $((9901 + i))
    done
else
    scripts/run_config.py --config "$ENVOY_CONFIG" 0 >"$LOGS/envoy.yaml"
    # Process substitution rather than a pipe, so that $! is Envoy itself and `stop` reaches it.
    .venv/bin/envoy -c "$LOGS/envoy.yaml" --concurrency 2 --disable-hot-restart \
        --log-level warn --component-log-level "$ENVOY_LOG_LEVELS" > >(tee "$LOGS/envoy.log") 2>&1 &
    pids+=($!)
    names[$!]="envoy ($LOGS/envoy.log)"
    wait_ready 9901
fi

# The demo's keys (the config holds only their SHA-256).
demo_key=sk-sluice-demo
trial_key=sk-sluice-trial

cat <<MSG

Sluice is up.
  gateway     http://127.0.0.1:10000   (Envoy + Sluice, $HOST build: $ENVOY_CONFIG)
  replicas    Llama-3.1-8B (+ sql-lora) on :8001, :8002; Qwen2.5-7B on :8003
  providers   OpenAI-shaped stand-in on :8101, Anthropic-shaped on :8102 (model gpt-4.1)
  envoy admin http://127.0.0.1:9901    (stats: /stats?filter=sluice)
  picker      http://127.0.0.1:9100/healthz
  admin API   http://127.0.0.1:9190/admin/v1   (token: $SLUICE_ADMIN_TOKEN; docs/admin-api.md)
  redis       127.0.0.1:$REDIS_PORT               (cluster quota counters, for quotas.cluster)

Demo API keys (tenants and limits in scripts/run_config.py; a request without a key gets 401):
  $demo_key    tenant demo, 60 requests and 200,000 tokens per minute
  $trial_key   tenant trial, 3 requests per minute

Try:
  # a chat completion, and a stream through an alias
  curl -s http://127.0.0.1:10000/v1/chat/completions -H 'authorization: Bearer $demo_key' \\
    -H 'content-type: application/json' \\
    -d '{"model":"meta-llama/Llama-3.1-8B-Instruct","messages":[{"role":"user","content":"Hello!"}]}'
  curl -sN http://127.0.0.1:10000/v1/chat/completions -H 'authorization: Bearer $demo_key' \\
    -H 'content-type: application/json' \\
    -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello!"}],"stream":true}'

  # quotas: the trial key's 4th request in a minute gets 429 with retry-after
  for i in 1 2 3 4; do curl -s -o /dev/null -w '%{http_code} retry-after=%header{retry-after}\\n' \\
    http://127.0.0.1:10000/v1/chat/completions -H 'authorization: Bearer $trial_key' \\
    -H 'content-type: application/json' \\
    -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}],"max_tokens":4}'; done

  # guardrails: the card number and e-mail are redacted before the model sees them
  # ([[echo]] makes the simulated model answer with the prompt it received)
  curl -s http://127.0.0.1:10000/v1/chat/completions -H 'authorization: Bearer $demo_key' \\
    -H 'content-type: application/json' \\
    -d '{"model":"gpt-4o","messages":[{"role":"user","content":"[[echo]]Card 4111 1111 1111 1111, mail jane@example.com"}]}'

  curl -s http://127.0.0.1:10000/v1/models -H 'authorization: Bearer $demo_key'

  # providers: gpt-4.1 goes to the OpenAI-shaped provider first (90% of users; 10% start at the
  # Anthropic-shaped one, translated both ways). Make the first one answer 429 with retry-after:
  # the answer comes from the other (its "model" says which), and for 10 s requests start there.
  curl -s -X PUT http://127.0.0.1:8101/admin/faults -d '{"status":429,"retry_after_s":10}'
  curl -s http://127.0.0.1:10000/v1/chat/completions -H 'authorization: Bearer $demo_key' \\
    -H 'content-type: application/json' \\
    -d '{"model":"gpt-4.1","messages":[{"role":"user","content":"Hello!"}],"user":"ada"}'
  curl -s -X DELETE http://127.0.0.1:8101/admin/faults

Ctrl-C stops everything. Access log below; other logs in .run/.
MSG
if [ -n "$CLUSTER" ]; then
    cat <<MSG

Cluster mode: a second gateway on http://127.0.0.1:10001 (admin :9902) shares every tenant's
limits with the first, through the picker and Redis (:$REDIS_PORT). The trial key allows 3
requests per minute in all: send 3 to each gateway and see the 429s:
  for port in 10000 10001; do for i in 1 2 3; do
    curl -s -o /dev/null -w '%{http_code} ' http://127.0.0.1:\$port/v1/chat/completions \\
      -H 'authorization: Bearer $trial_key' -H 'content-type: application/json' \\
      -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}],"max_tokens":4}'
  done; echo; done
  curl -s 'http://127.0.0.1:9901/stats?filter=sluice_quota'
Access logs: .run/envoy-0.log, .run/envoy-1.log.
MSG
fi

# Runs until Ctrl-C, or until one of the processes exits: then says which, and stops the rest.
set +e
wait -n -p exited "${pids[@]}"
status=$?
echo >&2
echo "${names[$exited]:-a process} exited (status $status); stopping the others." >&2
exit 1
