#!/bin/sh
# The pre-upgrade backup's second step, in the Postgres image (its pg_dump): when backup-needed.py found a
# migration pending, dump the metadata database (custom format, restorable with pg_restore) onto the
# backups claim as <UTC time>-<revision>.dump, then keep the newest AIRFLOW_K8S_BACKUP_KEEP.
set -eu
flag="${AIRFLOW_K8S_BACKUP_FLAG:?}"
folder="${AIRFLOW_K8S_BACKUP_DIR:?}"
keep="${AIRFLOW_K8S_BACKUP_KEEP:?}"
if [ ! -f "$flag" ]; then
  echo "db-backup: nothing to back up"
  exit 0
fi
revision="$(cat "$flag")"
# Airflow's SQLAlchemy URL as a libpq URI (the password stays in the mounted file and this process)
url="$(sed 's|^postgresql+psycopg2://|postgresql://|' "${AIRFLOW_K8S_DATABASE_URL_FILE:?}")"
name="$(date -u +%Y%m%dT%H%M%SZ)-${revision}.dump"
pg_dump --format=custom --no-owner --no-privileges --file="${folder}/.${name}.partial" --dbname="$url"
mv "${folder}/.${name}.partial" "${folder}/${name}"
echo "db-backup: wrote ${name} ($(wc -c < "${folder}/${name}") bytes)"
# the newest first; everything after the first $keep goes
ls -1 "$folder" | grep '\.dump$' | sort -r | tail -n +"$((keep + 1))" | while read -r old; do
  rm -f -- "${folder}/${old}"
  echo "db-backup: removed ${old} (keeping ${keep})"
done
