#!/usr/bin/env bash
# Installs what `make bench` needs beyond `scripts/setup.sh`: wrk (Debian), oha (crates.io, built
# once per version into ~/.cache/sluice, linked from .bench/bin) and LiteLLM (PyPI, in its own venv,
# also built once per version into ~/.cache/sluice, linked as .bench/litellm-venv). Idempotent. A
# tool that cannot be installed is recorded, not fatal: the report says what it could not measure.
set -euo pipefail
cd "$(dirname "$0")/.."

OHA_VERSION=1.16.0
# Keep in step with LITELLM_VERSION in bench/src/procs.rs.
LITELLM_VERSION=1.106.2

say() { printf '==> %s\n' "$*"; }
mkdir -p .bench/bin
# Everything under .bench/ stays out of git.
printf '*\n' > .bench/.gitignore
log=.bench/setup.log
: > "$log"

if ! command -v wrk >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then
    say "installing wrk and curl (Debian)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk curl >/dev/null
fi

oha_root="${XDG_CACHE_HOME:-$HOME/.cache}/sluice/oha-$OHA_VERSION"
if ! "$oha_root/bin/oha" --version 2>/dev/null | grep -q " $OHA_VERSION\$"; then
    say "building oha $OHA_VERSION into $oha_root (a few minutes, once)"
    if ! cargo install --quiet --locked --root "$oha_root" oha --version "$OHA_VERSION" --force >>"$log" 2>&1; then
        echo "oha could not be built (see $log): fixed-rate runs will be skipped" >&2
    fi
fi
if [ -x "$oha_root/bin/oha" ]; then
    ln -sfn "$oha_root/bin/oha" .bench/bin/oha
else
    rm -f .bench/bin/oha
fi

# LiteLLM's venv is built once per version into ~/.cache/sluice (a new checkout reuses it) and
# linked as .bench/litellm-venv.
venv="${XDG_CACHE_HOME:-$HOME/.cache}/sluice/litellm-$LITELLM_VERSION"
if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('litellm') != '$LITELLM_VERSION')" 2>/dev/null; then
    say "installing LiteLLM $LITELLM_VERSION into $venv (a minute or two, once)"
    rm -rf "$venv"
    if ! { python3 -m venv "$venv" &&
           "$venv/bin/pip" install --quiet --disable-pip-version-check "litellm[proxy]==$LITELLM_VERSION"; } >>"$log" 2>&1; then
        echo "LiteLLM could not be installed (see $log); the report will say so" >&2
        tail -n 5 "$log" > .bench/litellm-unavailable
        rm -rf "$venv"
    fi
fi
if [ -x "$venv/bin/litellm" ]; then
    rm -f .bench/litellm-unavailable
    [ -L .bench/litellm-venv ] || rm -rf .bench/litellm-venv
    ln -sfn "$venv" .bench/litellm-venv
else
    rm -rf .bench/litellm-venv
fi
