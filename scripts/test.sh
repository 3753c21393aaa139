#!/usr/bin/env bash
# The README's test command: installs what the tests need when it is missing (Chromium and
# chromedriver, from Debian's packages, for the web UI's browser tests), then runs every test
# of the workspace. Arguments go to `cargo test` (e.g. `scripts/test.sh -p ipm-node --test web`).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is not installed: install Rust (https://rustup.rs) first" >&2
  exit 1
fi

have_browser() {
  command -v chromedriver >/dev/null 2>&1 &&
    { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 ||
      command -v google-chrome >/dev/null 2>&1; }
}

if ! have_browser; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "the browser tests need chromium and chromedriver, and apt-get is not here to install them: install both first" >&2
    exit 1
  fi
  echo "== installing chromium and chromium-driver (Debian packages) for the web UI's browser tests"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  if ! have_browser; then
    echo "chromium and chromium-driver were installed but chromedriver or chromium is still not on PATH" >&2
    exit 1
  fi
fi

exec cargo test --workspace --locked "$@"
