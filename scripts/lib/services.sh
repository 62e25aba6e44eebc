# Starts collector-service and api-service (debug builds) on free loopback
# ports against $DATABASE_URL, and stops them when the calling script exits.
# Sourced by scripts/demo and scripts/grpcurl-check, which run under
# scripts/with-postgres.
#
# The collector requires a shared token (written to a fresh file here), as in
# production. api-service's caller authentication is the caller's choice:
# export CUDLY_AUTH_DISABLED=true (the demo) or the CUDLY_JWT_* variables.
#
# After start_services: API_ADDR, COLLECTOR_ADDR, API_METRICS_ADDR,
# COLLECTOR_METRICS_ADDR (host:port), CUDLY_API_URL, and the service logs in
# $SERVICE_LOGS.
#
# The binaries are the debug builds wherever cargo puts them (CARGO_TARGET_DIR
# included), or those in CUDLY_BIN_DIR when it is set.

if [ -n "${CUDLY_BIN_DIR:-}" ]; then
  bin=$CUDLY_BIN_DIR
else
  source "$(dirname "${BASH_SOURCE[0]}")/target-dir.sh"
  bin=$CUDLY_TARGET_DIR/debug
fi
SERVICE_LOGS=${CUDLY_PG_DIR:-$(mktemp -d)}
service_pids=()

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

stop_services() {
  for pid in "${service_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${service_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  service_pids=()
}

start_services() {
  trap stop_services EXIT
  API_ADDR=127.0.0.1:$(free_port)
  COLLECTOR_ADDR=127.0.0.1:$(free_port)
  export CUDLY_COLLECTOR_LISTEN=$COLLECTOR_ADDR CUDLY_COLLECTOR_URL=http://$COLLECTOR_ADDR
  export CUDLY_API_LISTEN=$API_ADDR CUDLY_API_URL=http://$API_ADDR
  API_METRICS_ADDR=127.0.0.1:$(free_port)
  COLLECTOR_METRICS_ADDR=127.0.0.1:$(free_port)
  (umask 077 && python3 -c 'import secrets; print(secrets.token_urlsafe(32))' >"$SERVICE_LOGS/collector-token")
  export CUDLY_COLLECTOR_TOKEN_FILE=$SERVICE_LOGS/collector-token
  "$bin/api-service" migrate
  CUDLY_METRICS_LISTEN=$COLLECTOR_METRICS_ADDR "$bin/collector-service" >"$SERVICE_LOGS/collector.log" 2>&1 &
  service_pids+=($!)
  CUDLY_METRICS_LISTEN=$API_METRICS_ADDR "$bin/api-service" >"$SERVICE_LOGS/api.log" 2>&1 &
  service_pids+=($!)
  for _ in $(seq 1 100); do
    if "$bin/cudlyctl" health >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "services did not come up; logs:" >&2
  tail -n 20 "$SERVICE_LOGS/collector.log" "$SERVICE_LOGS/api.log" >&2
  return 1
}
