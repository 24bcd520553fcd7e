#!/bin/sh
# Scheduled backups: the loop of the compose service `db-backup` (postgres image, ./backups mounted at
# /backups). Every BACKUP_INTERVAL_HOURS it dumps each database in BACKUP_DATABASES with pg_dump
# --format=custom, reads the dump back, and keeps it as /backups/<db>-<UTC stamp>.dump, mode 600: the same
# files as `make backup` (scripts/backup.sh); restore either with `make restore FILE=...`. Then dumps older
# than BACKUP_RETENTION_DAYS go, the newest of each database always stays. It runs as the owner of
# ./backups on the host, or as postgres (999) when that owner is root, never as root itself.
# Change the interval and retention in .env; the health check reads /tmp/backup-ok and /tmp/backup-failed.
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

while :; do
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  failed=0
  for db in ${BACKUP_DATABASES:-airflow demo}; do
    partial="/backups/.$db-$stamp.dump.partial"
    if pg_dump --format=custom --dbname="$db" --file="$partial" && pg_restore --list "$partial" > /dev/null; then
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
  else
    touch /tmp/backup-failed
  fi
  sleep "$interval"
done
