#!/usr/bin/env bash
# Installs what tests/it/browser_consent.rs needs, idempotently:
#   - /usr/bin/chromium       Debian's chromium package (apt-get, when missing; needs root)
#   - tests/browser/node_modules   `npm ci` from tests/browser/package-lock.json (playwright-core,
#                                  which drives that Chromium; it never downloads a browser)
# The npm part is skipped when its stamp (a hash of package.json and package-lock.json plus the
# node version) says it is already done. Paths are resolved from this script's location, so it
# can be run from anywhere.
#
# Needs: node >= 20 with npm; apt-get and root when chromium is missing (CHROMIUM=/path to use
# another Chromium instead). Reaches only Debian's package archive and the npm registry.
#
# Usage: tests/browser/setup.sh [--force]     (--force reinstalls node_modules)
set -euo pipefail

BROWSER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
FORCE=0
case "${1:-}" in
  --force) FORCE=1 ;;
  "") ;;
  *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

log() { echo "browser setup: $*" >&2; }
die() { log "error: $*"; exit 1; }

sha() { sha256sum "$@" | cut -d' ' -f1; }

# ---------------------------------------------------------------- chromium

if [ ! -x "$CHROMIUM" ]; then
  [ "$CHROMIUM" = /usr/bin/chromium ] || die "$CHROMIUM is not an executable"
  command -v apt-get >/dev/null || die "chromium is missing and there is no apt-get (Debian: apt-get install chromium)"
  [ "$(id -u)" = 0 ] || die "chromium is missing: run as root, or apt-get install chromium yourself"
  log "installing Debian's chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq chromium >&2
  [ -x "$CHROMIUM" ] || die "$CHROMIUM is missing after apt-get install chromium"
fi
# The Debian wrapper script's /dev/shm check prints a shell warning on some machines; the
# version line is the last one.
CHROMIUM_VERSION="$("$CHROMIUM" --version 2>/dev/null | tail -1)"
[ -n "$CHROMIUM_VERSION" ] || die "$CHROMIUM --version printed nothing"

# ---------------------------------------------------------------- playwright-core

command -v node >/dev/null || die "node is not installed (need node >= 20 with npm)"
command -v npm >/dev/null || die "npm is not installed"
NODE_VERSION="$(node --version)"
NODE_MAJOR="${NODE_VERSION#v}"; NODE_MAJOR="${NODE_MAJOR%%.*}"
[ "$NODE_MAJOR" -ge 20 ] || die "node $NODE_VERSION is too old (need >= 20)"

STAMP_FILE="$BROWSER_DIR/node_modules/.browser-setup-stamp"
STAMP="$(sha "$BROWSER_DIR/package.json" "$BROWSER_DIR/package-lock.json" | sha256sum | cut -d' ' -f1) node-$NODE_VERSION"
if [ "$FORCE" = 0 ] && [ -f "$STAMP_FILE" ] && [ "$(cat "$STAMP_FILE")" = "$STAMP" ] \
   && [ -f "$BROWSER_DIR/node_modules/playwright-core/package.json" ]; then
  log "node_modules is up to date"
else
  log "npm ci in $BROWSER_DIR"
  # npm ci removes node_modules first, so a half-finished install never looks done.
  # PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: belt and braces, playwright-core downloads nothing anyway.
  (cd "$BROWSER_DIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error) >&2
  echo "$STAMP" > "$STAMP_FILE"
fi

log "ready: $CHROMIUM_VERSION, playwright-core $(node -p 'require(process.argv[1]).version' "$BROWSER_DIR/node_modules/playwright-core/package.json")"
