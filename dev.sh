#!/usr/bin/env bash
# livebi developer entry point: installs what it needs into .venv, then runs the demo or the tests.
#   ./dev.sh demo [livebi demo options]   serve the demo (http://127.0.0.1:8000, logins demo/demo)
#   ./dev.sh test [pytest options]        run the whole test suite
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
VENV=.venv

ensure_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
  fi
  # Reinstall when pyproject.toml changed since the last install.
  local stamp="$VENV/.livebi-installed"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    "$VENV/bin/pip" install -q -e ".[test,bench]"
    touch "$stamp"
  fi
}

ensure_chromium() {
  # The browser tests drive Debian's chromium through Playwright (no browser download).
  if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian's chromium for the browser tests…" >&2
    (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) >/tmp/livebi-apt.log 2>&1 \
      || echo "could not install chromium (see /tmp/livebi-apt.log): browser tests will skip" >&2
  fi
}

cmd=${1:-help}
shift || true
case "$cmd" in
  demo)
    ensure_venv
    exec "$VENV/bin/livebi" demo "$@"
    ;;
  test)
    ensure_venv
    ensure_chromium
    # pytest exits 5 when it collected no tests: that is a failure here, never a silent pass.
    # Two workers (pytest-xdist): most of the suite waits on servers, browsers and sockets, so
    # the whole run takes ~7 min instead of ~15 on 2 cores; LIVEBI_TEST_WORKERS=0 runs it serially.
    exec "$VENV/bin/python" -m pytest -q -rs -n "${LIVEBI_TEST_WORKERS:-2}" "$@"
    ;;
  *)
    sed -n '2,4p' "$0"
    exit 2
    ;;
esac
