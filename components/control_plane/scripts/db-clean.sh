#!/usr/bin/env bash
# Delete metadata rows older than AIRFLOW_K8S_DB_CLEAN_RETENTION_DAYS days with `airflow db clean`
# (run by the airflow-database-cleanup CronJob).
#
# --skip-archive: db clean would otherwise copy every deleted row into an _airflow_deleted__* table,
# and the database would not shrink. --yes: nobody is there to confirm.
set -euo pipefail
days="${AIRFLOW_K8S_DB_CLEAN_RETENTION_DAYS:?set AIRFLOW_K8S_DB_CLEAN_RETENTION_DAYS (days)}"
before="$(date -u -d "-${days} days" '+%Y-%m-%dT%H:%M:%S+00:00')"
echo "db-clean: deleting rows older than ${before} (${days} days)"
exec airflow db clean --clean-before-timestamp "${before}" --skip-archive --yes
