# Builds the web console (web/) into web/dist with npm: `npm ci` when
# web/node_modules is missing or older than web/package-lock.json, then
# `npm run build` (TypeScript generated from proto/, type-checked, bundled).
# Sourced by scripts/demo and scripts/test-console.
#
# After build_console: CONSOLE_DIR, the built console's directory.

build_console() {
  local web
  web=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../web" && pwd)
  if ! command -v npm >/dev/null 2>&1; then
    echo "console: npm not found; install Node.js 20 or newer to build the web console" >&2
    return 1
  fi
  if [ ! -f "$web/node_modules/.package-lock.json" ] || [ "$web/package-lock.json" -nt "$web/node_modules/.package-lock.json" ]; then
    (cd "$web" && npm ci --no-audit --no-fund --loglevel=error) >&2 || return 1
  fi
  (cd "$web" && npm run --silent build) >&2 || return 1
  CONSOLE_DIR=$web/dist
}
