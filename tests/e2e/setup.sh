#!/usr/bin/env bash
# Installs what the MCP end-to-end checkers need, idempotently:
#   - tests/e2e/node_modules   `npm ci` from tests/e2e/package-lock.json (for ts-client.mjs)
#   - target/e2e-venv          a Python venv with tests/e2e/requirements.txt (for py_client.py)
# Each part is skipped when its stamp (a hash of the lockfile/requirements plus the
# node/python version) says it is already done. Paths are resolved from this script's
# location, so it can be run from anywhere.
#
# Needs: node >= 20 with npm, python3 >= 3.10 (PYTHON=... to choose another) and either
# the venv module with ensurepip (Debian: python3-venv) or pip for that python (Debian:
# python3-pip). Reaches only the npm registry and PyPI.
#
# Usage: tests/e2e/setup.sh [--force]     (--force reinstalls both)
set -euo pipefail

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$E2E_DIR/../.." && pwd)"
VENV="$ROOT/target/e2e-venv"
PYTHON="${PYTHON:-python3}"
FORCE=0
case "${1:-}" in
  --force) FORCE=1 ;;
  "") ;;
  *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

log() { echo "e2e setup: $*" >&2; }
die() { log "error: $*"; exit 1; }

sha() { sha256sum "$@" | cut -d' ' -f1; }

# ---------------------------------------------------------------- node

command -v node >/dev/null || die "node is not installed (need node >= 20 with npm)"
command -v npm >/dev/null || die "npm is not installed"
NODE_VERSION="$(node --version)"
NODE_MAJOR="${NODE_VERSION#v}"; NODE_MAJOR="${NODE_MAJOR%%.*}"
[ "$NODE_MAJOR" -ge 20 ] || die "node $NODE_VERSION is too old (need >= 20)"

NODE_STAMP_FILE="$E2E_DIR/node_modules/.e2e-setup-stamp"
NODE_STAMP="$(sha "$E2E_DIR/package.json" "$E2E_DIR/package-lock.json" | sha256sum | cut -d' ' -f1) node-$NODE_VERSION"
if [ "$FORCE" = 0 ] && [ -f "$NODE_STAMP_FILE" ] && [ "$(cat "$NODE_STAMP_FILE")" = "$NODE_STAMP" ] \
   && [ -f "$E2E_DIR/node_modules/@modelcontextprotocol/sdk/package.json" ]; then
  log "node_modules is up to date"
else
  log "npm ci in $E2E_DIR"
  # npm ci removes node_modules first, so a half-finished install never looks done.
  (cd "$E2E_DIR" && npm ci --no-audit --no-fund --loglevel=error) >&2
  echo "$NODE_STAMP" > "$NODE_STAMP_FILE"
fi

# ---------------------------------------------------------------- python

command -v "$PYTHON" >/dev/null || die "$PYTHON is not installed (need python >= 3.10)"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
  || die "$("$PYTHON" --version 2>&1) is too old (need >= 3.10)"
PY_VERSION="$("$PYTHON" -c 'import sys; print(".".join(map(str, sys.version_info[:3])))')"

VENV_STAMP_FILE="$VENV/.e2e-setup-stamp"
VENV_STAMP="$(sha "$E2E_DIR/requirements.txt") python-$PY_VERSION"
if [ "$FORCE" = 0 ] && [ -f "$VENV_STAMP_FILE" ] && [ "$(cat "$VENV_STAMP_FILE")" = "$VENV_STAMP" ] \
   && "$VENV/bin/python" -c 'import mcp' 2>/dev/null; then
  log "$VENV is up to date"
else
  log "creating $VENV (python $PY_VERSION)"
  rm -rf "$VENV"
  mkdir -p "$ROOT/target"
  if "$PYTHON" -m venv "$VENV" >/dev/null 2>&1; then
    pip_install() { "$VENV/bin/python" -m pip "$@"; }
  else
    # Debian without python3-venv has no ensurepip: make the venv without pip and let
    # the interpreter's own pip (python3-pip) install into it with --python (pip >= 22.3).
    rm -rf "$VENV"
    "$PYTHON" -m venv --without-pip "$VENV" \
      || die "cannot create a venv with $PYTHON (Debian: apt-get install python3-venv)"
    "$PYTHON" -m pip --version >/dev/null 2>&1 \
      || die "$PYTHON has neither ensurepip nor pip (Debian: apt-get install python3-venv or python3-pip)"
    pip_install() { "$PYTHON" -m pip --python "$VENV/bin/python" "$@"; }
  fi
  pip_install install --quiet --disable-pip-version-check --no-input -r "$E2E_DIR/requirements.txt" >&2
  "$VENV/bin/python" -c 'import mcp' || die "mcp does not import in $VENV"
  echo "$VENV_STAMP" > "$VENV_STAMP_FILE"
fi

log "ready: node $NODE_VERSION ($(cd "$E2E_DIR" && node -p 'require("./node_modules/@modelcontextprotocol/sdk/package.json").version' 2>/dev/null || echo '?') SDK), python $PY_VERSION (mcp $("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("mcp"))'))"
