#!/usr/bin/env bash
# Keep local task logs for AIRFLOW_K8S_LOG_RETENTION_DAYS days: every 15 minutes, delete older files
# under the logs folder and the folders they leave empty (the log-cleanup sidecar; `--once` for one pass).
set -euo pipefail
days="${AIRFLOW_K8S_LOG_RETENTION_DAYS:?set AIRFLOW_K8S_LOG_RETENTION_DAYS (days)}"
folder="${AIRFLOW_HOME:-/opt/airflow}/logs"
while :; do
  # -mmin: whole minutes, so a file is kept its full retention, not "rounded down" to whole days
  find "${folder}" -mindepth 1 -type f -mmin "+$(( days * 24 * 60 ))" -print -delete 2>/dev/null \
    | sed 's/^/log-cleanup: deleted /' || true
  find "${folder}" -mindepth 1 -type d -empty -delete 2>/dev/null || true
  [ "${1:-}" = "--once" ] && exit 0
  sleep 900 & wait $!
done
