# The web console's npm steps, sourced by scripts/demo, scripts/test-console
# and scripts/bench-console:
#
#   npm_install DIR   `npm ci` in DIR when its node_modules is missing or
#                     older than its package-lock.json
#   build_console     npm_install web/, then `npm run build` (TypeScript
#                     generated from proto/, type-checked, bundled); sets
#                     CONSOLE_DIR to the built console (web/dist)

npm_install() {
  if ! command -v npm >/dev/null 2>&1; then
    echo "console: npm not found; install Node.js 20 or newer to build the web console" >&2
    return 1
  fi
  if [ ! -f "$1/node_modules/.package-lock.json" ] || [ "$1/package-lock.json" -nt "$1/node_modules/.package-lock.json" ]; then
    (cd "$1" && npm ci --no-audit --no-fund --loglevel=error) >&2 || return 1
  fi
}

build_console() {
  local web
  web=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../web" && pwd)
  npm_install "$web" || return 1
  (cd "$web" && npm run --silent build) >&2 || return 1
  CONSOLE_DIR=$web/dist
}
