# Sets CUDLY_TARGET_DIR to the directory cargo builds into, as cargo itself
# reports it: `target/` in the workspace unless CARGO_TARGET_DIR, a cargo
# config's build.target-dir or the like moves it. Sourced by every script
# that runs a built binary, so none of them assumes `target/`.
#
#   source scripts/lib/target-dir.sh
#   "$CUDLY_TARGET_DIR/debug/api-service" --help

CUDLY_TARGET_DIR=$(
  cd "$(dirname "${BASH_SOURCE[0]}")/../.." &&
    cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
) || {
  echo "${0##*/}: cannot ask cargo where it builds (cargo metadata failed)" >&2
  exit 1
}
