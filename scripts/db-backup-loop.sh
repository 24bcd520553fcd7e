#!/bin/sh
# Scheduled backups: the loop of the compose service `db-backup` (postgres image, ./backups mounted at
# /backups). Every BACKUP_INTERVAL_HOURS it dumps each database in BACKUP_DATABASES with pg_dump
# --format=custom, reads the dump back, and keeps it as /backups/<db>-<UTC stamp>.dump, mode 600: the same
# files as `make backup` (scripts/backup.sh); restore either with `make restore FILE=...`. Then dumps older
# than BACKUP_RETENTION_DAYS go, the newest of each database always stays. It runs as the owner of
# ./backups on the host, or as postgres (999) when that owner is root, never as root itself.
# Change the interval and retention in .env; the health check reads /tmp/backup-ok and /tmp/backup-failed.
# Monitoring: at its start and after every round it writes its interval, start time and the time of the
# last good (and last failed) round into the one-row table db_backup.status of the airflow database;
# postgres-exporter exports it (config/postgres_exporter_queries.yml) for the BackupTooOld alert. The
# dumps leave that schema out (as scripts/backup.sh does), so a restore never rolls the state back.
set -eu

if [ "$(id -u)" = 0 ]; then
  uid=$(stat -c %u /backups)
  gid=$(stat -c %g /backups)
  if [ "$uid" = 0 ]; then
    uid=999 gid=999
    chown "$uid:$gid" /backups
  fi
  exec setpriv --reuid="$uid" --regid="$gid" --clear-groups /bin/sh "$0" "$@"
fi

umask 077
export PGHOST=postgres PGUSER=airflow  # PGPASSWORD comes from the service's environment
# sh arithmetic would read a word as an unset variable (0): a typo must stop here, not loop without pause.
for setting in "BACKUP_INTERVAL_HOURS=${BACKUP_INTERVAL_HOURS:-24}" "BACKUP_RETENTION_DAYS=${BACKUP_RETENTION_DAYS:-7}"; do
  case ${setting#*=} in
    '' | *[!0-9]* | 0*) echo "db-backup: ERROR: $setting in .env is not a whole number of at least 1" >&2; exit 1 ;;
  esac
done
interval=$((${BACKUP_INTERVAL_HOURS:-24} * 3600))
keep_minutes=$((${BACKUP_RETENTION_DAYS:-7} * 1440))
started=$(date -u +%s)

# record [last_success_at|last_failure_at]: the loop's state into db_backup.status, that column set to
# now. Creates the table if needed. Best effort: a failure is logged and the backups go on (the row
# then ages, and BackupTooOld says so).
record() {
  stamp_column=""
  [ -z "${1:-}" ] || stamp_column="UPDATE db_backup.status SET $1 = now();"
  if ! psql --dbname=airflow --no-psqlrc --quiet --set=ON_ERROR_STOP=1 --single-transaction <<SQL > /dev/null
SET client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS db_backup;
CREATE TABLE IF NOT EXISTS db_backup.status (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  interval_seconds integer NOT NULL,
  started_at timestamptz NOT NULL,
  last_success_at timestamptz,
  last_failure_at timestamptz
);
INSERT INTO db_backup.status (interval_seconds, started_at) VALUES ($interval, to_timestamp($started))
  ON CONFLICT (id) DO UPDATE SET interval_seconds = excluded.interval_seconds, started_at = excluded.started_at;
$stamp_column
SQL
  then
    echo "db-backup: WARNING: could not record the backup state in db_backup.status" >&2
  fi
}
record

while :; do
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  failed=0
  for db in ${BACKUP_DATABASES:-airflow demo}; do
    partial="/backups/.$db-$stamp.dump.partial"
    if pg_dump --format=custom --exclude-schema=db_backup --dbname="$db" --file="$partial" \
      && pg_restore --list "$partial" > /dev/null; then
      mv "$partial" "/backups/$db-$stamp.dump"
      echo "db-backup: /backups/$db-$stamp.dump"
      newest="/backups/$db-$stamp.dump"
      find /backups -maxdepth 1 -type f -name "$db-*.dump" -mmin "+$keep_minutes" ! -path "$newest" \
        -print -delete | sed 's/^/db-backup: deleted /'
    else
      rm -f "$partial"
      failed=1
      echo "db-backup: ERROR: the backup of database $db failed" >&2
    fi
  done
  if [ "$failed" = 0 ]; then
    rm -f /tmp/backup-failed
    touch /tmp/backup-ok
    record last_success_at
  else
    touch /tmp/backup-failed
    record last_failure_at
  fi
  sleep "$interval"
done
