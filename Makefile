# Sluice: `make run` brings up a local gateway; `make test` runs every check CI runs.
# Both install what they need first (scripts/setup.sh).

WASM := target/wasm32-wasip1/release/sluice_filter.wasm
# wasm-bindgen-test-runner runs the filter's unit tests compiled to wasm32 under Node.
WASM_TEST_RUNNER := CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=$(CURDIR)/.tools/bin/wasm-bindgen-test-runner

.PHONY: setup build run test lint unit-test wasm-test e2e-test bench clean

setup:
	@scripts/setup.sh

## build: the filter (.wasm) and the release binaries of the simulator and picker.
build: setup
	cargo build --locked --release -p sluice-filter --target wasm32-wasip1
	cargo build --locked --release -p sluice-simulator -p sluice-picker
	@ls -l $(WASM)

## run: replicas + picker + Envoy with the filter, in the foreground; Ctrl-C stops all.
run: build
	@scripts/run.sh

## test: formatting, lints (native and wasm32-wasip1), unit tests natively and under Node,
## then end-to-end tests against real Envoy and simulator processes.
test: setup lint unit-test wasm-test e2e-test

lint:
	cargo fmt --all --check
	cargo clippy --locked --workspace --all-targets -- -D warnings
	cargo clippy --locked -p sluice-filter -p sluice-snapshot --target wasm32-wasip1 --all-targets -- -D warnings

unit-test:
	cargo test --locked --workspace --exclude sluice-e2e

wasm-test:
	$(WASM_TEST_RUNNER) cargo test --locked -p sluice-filter -p sluice-snapshot --target wasm32-unknown-unknown --lib

e2e-test:
	cargo build --locked --release -p sluice-filter --target wasm32-wasip1
	cargo build --locked -p sluice-simulator -p sluice-picker
	cargo test --locked -p sluice-e2e

## bench: two sections. Overhead: Sluice side by side with no gateway, plain Envoy and LiteLLM
## against one fast mock upstream (repeated runs, medians), plus the filter's criterion
## micro-benchmarks. Routing: Sluice's replica picking against Envoy round robin and least-request
## on four simulated replicas (release builds), prefix-heavy and independent workloads. Prints a
## summary and writes BENCHMARKS.md; under 15 minutes. `make bench BENCH_ARGS=--quick` checks that
## it all works in about 4 (report in .bench/); `BENCH_ARGS="--only routing"` runs one section and
## keeps the other's figures. The orchestrator is built in the dev profile on purpose: it unwinds
## on a failure, so every process it started is stopped.
bench: setup
	@bench/setup.sh
	cargo build --locked --release -p sluice-filter --target wasm32-wasip1
	cargo build --locked --release -p sluice-simulator -p sluice-picker
	cargo run --locked -q -p sluice-bench --bin bench -- $(BENCH_ARGS)

clean:
	cargo clean
	rm -rf .run
