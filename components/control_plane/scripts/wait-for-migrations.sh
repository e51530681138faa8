#!/usr/bin/env bash
# Wait, at most AIRFLOW_K8S_MIGRATION_WAIT_TIMEOUT seconds, until the metadata database is reachable
# and its schema is at the head revision of this image's Airflow.
#
# `airflow db check-migrations` waits for pending migrations, but fails at once when the database is
# not reachable yet (Postgres still starting, DNS not ready), so the check is retried until the deadline.
set -u
limit="${AIRFLOW_K8S_MIGRATION_WAIT_TIMEOUT:?set AIRFLOW_K8S_MIGRATION_WAIT_TIMEOUT (seconds)}"
deadline=$(( $(date +%s) + limit ))
attempt=0
while :; do
  attempt=$(( attempt + 1 ))
  remaining=$(( deadline - $(date +%s) ))
  if [ "$remaining" -le 0 ]; then
    echo "wait-for-migrations: gave up after ${limit}s and ${attempt} attempts: database unreachable or not migrated" >&2
    exit 1
  fi
  step=$(( remaining < 60 ? remaining : 60 ))
  # `timeout` bounds one attempt, so the whole wait never overshoots the deadline.
  if timeout --kill-after=5 "${remaining}" airflow db check-migrations --migration-wait-timeout "${step}"; then
    echo "wait-for-migrations: schema at head after ${attempt} attempt(s)"
    exit 0
  fi
  sleep_for=$(( remaining < 5 ? remaining : 5 ))
  sleep "${sleep_for}"
done
