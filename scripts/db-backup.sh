#!/bin/sh
# The one backup implementation: dump, read back, keep, retention. Used by the compose service `db-backup`
# (`loop`, its command) and by `make backup` (scripts/backup.sh runs `once` in a throwaway container of
# that service: `docker compose run --rm --no-deps db-backup once`). Runs in the postgres image, BACKUP_DIR
# mounted at /backups. A round dumps each database in BACKUP_DATABASES with pg_dump --format=custom,
# reads the dump back whole (pg_restore to /dev/null: a dump it cannot read to the end is no backup) and
# only then keeps it as /backups/<db>-<UTC stamp>.dump, mode 600; then that database's dumps older than
# BACKUP_RETENTION_DAYS go, its newest always stays. Restore with `make restore FILE=...`.
# Modes:
#   loop   every BACKUP_INTERVAL_HOURS a round, forever; the health check reads /tmp/backup-ok and
#          /tmp/backup-failed. Monitoring: at its start and after every round it writes its interval,
#          start time and the time of the last good (and last failed) round into the one-row table
#          db_backup.status of the airflow database; postgres-exporter exports it
#          (config/postgres_exporter_queries.yml) for the BackupTooOld alert. The dumps leave that schema
#          out, so a restore never rolls the state back.
#   once   one round, no state recorded (the alert is about the scheduled backups); exit 1 if a database
#          failed.
#   check  only validate the settings `once` needs (also on the host, before Docker: scripts/backup.sh).
# It runs as the owner of /backups (BACKUP_DIR on the host), or as postgres (999) when that owner is root,
# never as root itself. Settings (environment, from .env through compose): BACKUP_INTERVAL_HOURS (24, loop
# only), BACKUP_RETENTION_DAYS (7), BACKUP_DATABASES ("airflow demo"), PGPASSWORD; BACKUP_SHOWN_DIR is the
# directory named in the log (default /backups; scripts/backup.sh passes the host's path).
set -eu

mode=${1:-loop}
case $mode in
  loop | once | check) ;;
  *) echo "db-backup: ERROR: unknown mode '$mode' (loop, once or check)" >&2; exit 2 ;;
esac

# sh arithmetic would read a word as an unset variable (0): a typo must stop here, not loop without
# pause or delete every old dump. At least 1: a retention of 0 days would leave only the newest dump.
: "${BACKUP_INTERVAL_HOURS:=24}" "${BACKUP_RETENTION_DAYS:=7}"
settings=BACKUP_RETENTION_DAYS
[ "$mode" != loop ] || settings="BACKUP_INTERVAL_HOURS $settings"
for name in $settings; do
  value=""
  eval "value=\${$name-}"
  case $value in
    '' | *[!0-9]* | 0*)
      echo "db-backup: ERROR: $name must be a whole number of at least 1 (set it in .env), not '$value'" >&2
      exit 1 ;;
  esac
done
[ "$mode" != check ] || exit 0

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
shown=${BACKUP_SHOWN_DIR:-/backups}
keep_minutes=$((BACKUP_RETENTION_DAYS * 1440))
stamp_glob='[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z'

# backup DB STAMP: one dump, read back whole, then kept; then retention for DB. Nothing is deleted
# unless the new dump was read back.
backup() {
  final="/backups/$1-$2.dump"
  partial="/backups/.$1-$2.dump.partial"
  if [ -e "$final" ]; then
    echo "db-backup: ERROR: $shown/$1-$2.dump exists already" >&2
    return 1
  fi
  if ! pg_dump --format=custom --exclude-schema=db_backup --dbname="$1" --file="$partial"; then
    echo "db-backup: ERROR: pg_dump of database $1 failed" >&2
  elif [ "$(head -c 5 "$partial")" != PGDMP ]; then
    echo "db-backup: ERROR: pg_dump of database $1 did not write a custom-format archive" >&2
  elif ! pg_restore --file=/dev/null "$partial"; then
    echo "db-backup: ERROR: pg_restore cannot read the dump of database $1 back" >&2
  else
    mv "$partial" "$final"
    echo "db-backup: $shown/$1-$2.dump ($(du -h "$final" | cut -f1))"
    find /backups -maxdepth 1 -type f -name "$1-$stamp_glob.dump" -mmin "+$keep_minutes" ! -path "$final" \
      -print -delete | while IFS= read -r old; do
      echo "db-backup: deleted $shown/${old#/backups/} (older than $BACKUP_RETENTION_DAYS days)"
    done
    return 0
  fi
  rm -f "$partial"
  return 1
}

# round: every database once; fails if any failed (the others are still backed up).
round() {
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  failed=0
  for db in ${BACKUP_DATABASES:-airflow demo}; do
    backup "$db" "$stamp" || { failed=1; echo "db-backup: ERROR: the backup of database $db failed" >&2; }
  done
  return "$failed"
}

if [ "$mode" = once ]; then
  round
  exit
fi

interval=$((BACKUP_INTERVAL_HOURS * 3600))
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

# The shell is PID 1, which ignores a signal it has no handler for: without this trap every stop (down,
# restart) would wait out its timeout and end in SIGKILL. A round in progress finishes first; the sleep
# runs in the background so that `wait` returns at once on the signal.
trap 'echo "db-backup: stopping"; exit 0' TERM INT
while :; do
  if round; then
    rm -f /tmp/backup-failed
    touch /tmp/backup-ok
    record last_success_at
  else
    touch /tmp/backup-failed
    record last_failure_at
  fi
  sleep "$interval" &
  wait "$!"
done
