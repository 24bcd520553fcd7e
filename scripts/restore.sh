#!/usr/bin/env bash
# Restore a dump made by scripts/backup.sh into the running stack's Postgres, safely: it checks the file
# first (present, readable, a custom-format archive pg_restore can list and read to the end), stops every
# Airflow service that writes to the database (api-server, schedulers, dag-processor, triggerer, workers,
# Flower; workers get Celery's warm shutdown, so running tasks finish first), restores with pg_restore
# --clean --if-exists as the airflow role in ONE transaction (any error leaves the database as it was),
# migrates the schema with airflow-init if the dump came from another Airflow version, starts the stopped
# services again and waits until the whole stack is healthy (scripts/wait_healthy.py).
# Run by `make restore FILE=backups/airflow-20260101T000000Z.dump`, or `scripts/restore.sh FILE`. The
# database restored is the one named inside the dump (airflow or demo). It addresses the stack the way
# `docker compose` does (COMPOSE_PROJECT_NAME, COMPOSE_FILE, COMPOSE_ENV_FILES); relative paths in those
# are taken from the repository root. Change: nothing here; WAIT_TIMEOUT (default 900 s) and PYTHON in
# the environment. The .env must be the one the dump was made with (AIRFLOW_FERNET_KEY decrypts it).
set -euo pipefail

log() { printf '[restore] %s\n' "$*"; }
die() { printf '[restore] ERROR: %s\n' "$*" >&2; exit 1; }

WRITERS=(airflow-apiserver airflow-scheduler airflow-dag-processor airflow-triggerer airflow-worker flower)

if [ "$#" -ne 1 ] || [ -z "$1" ]; then
  die "usage: $0 FILE (a dump made by scripts/backup.sh, e.g. make restore FILE=backups/airflow-<timestamp>.dump)"
fi
[ -e "$1" ] || die "$1: no such file"
[ -f "$1" ] || die "$1: not a regular file"
[ -r "$1" ] || die "$1: not readable by $(id -un)"
[ -s "$1" ] || die "$1: empty file"
[ "$(head -c 5 "$1")" = PGDMP ] || die "$1: not a pg_dump custom-format archive (made by scripts/backup.sh)"
file=$(realpath -- "$1")
cd "$(dirname "$0")/.."

# A client program run inside the postgres container as its superuser (POSTGRES_USER), password from the
# container's POSTGRES_PASSWORD; stdin and stdout pass through.
in_postgres() {
  # shellcheck disable=SC2016  # expanded by the container's shell, on purpose
  docker compose exec -T postgres sh -c 'PGUSER="$POSTGRES_USER" PGPASSWORD="$POSTGRES_PASSWORD" exec "$@"' sh "$@"
}
sql() {  # sql DATABASE QUERY: one value, or nothing
  printf '%s\n' "$2" | in_postgres psql --dbname="$1" --no-psqlrc --tuples-only --no-align --quiet \
    --set=ON_ERROR_STOP=1
}
schema_revision() {  # Airflow's and the FAB provider's alembic revisions, or "none"
  sql airflow "SELECT coalesce((SELECT string_agg(version_num, ',') FROM alembic_version), '') || '/' ||
                      coalesce((SELECT string_agg(version_num, ',') FROM alembic_version_fab), '');" \
    2>/dev/null || echo none
}

[ -n "$(docker compose ps --status running --quiet postgres 2>/dev/null)" ] \
  || die "the postgres service of this stack is not running (make up first)"

# pg_restore --list reads the archive's header and table of contents only: drain the rest of stdin.
# shellcheck disable=SC2016  # expanded by the container's shell, on purpose
toc=$(docker compose exec -T postgres sh -c 'pg_restore --list; status=$?; cat > /dev/null; exit "$status"' \
  < "$file") || die "$file: pg_restore cannot read it (truncated or corrupt?)"
db=$(sed -n 's/^;[[:space:]]*dbname: //p' <<< "$toc" | head -n 1)
created=$(sed -n 's/^; Archive created at //p' <<< "$toc" | head -n 1)
grep -q '^;[[:space:]]*Format: CUSTOM' <<< "$toc" || die "$file: not a custom-format archive"
# The table of contents comes first, so a dump cut short (a full disk, an interrupted copy) still lists:
# read every data block too, into nothing, before anything is stopped.
unreadable=$(docker compose exec -T postgres pg_restore --file=/dev/null < "$file" 2>&1) \
  || die "$file: pg_restore cannot read it to the end (truncated?): $unreadable"
[ -n "$db" ] || die "$file: the archive names no database"
[ "$(sql postgres "SELECT 1 FROM pg_database WHERE datname = '${db//\'/\'\'}';")" = 1 ] \
  || die "$file is a dump of database '$db', which this stack does not have"
before=$(schema_revision)

mapfile -t running < <(docker compose ps --services --status running)
stopped=()
for service in "${WRITERS[@]}"; do
  for name in "${running[@]}"; do
    if [ "$name" = "$service" ]; then stopped+=("$service"); fi
  done
done
log "restoring $file (database '$db', dumped $created)"
restart_writers() {
  [ "${#stopped[@]}" -eq 0 ] || docker compose start "${stopped[@]}"
}
# On any failure from here on the database is unchanged (one transaction): start the services again.
on_failure() {
  local status=$?
  if [ "$status" -ne 0 ] && [ "${#stopped[@]}" -gt 0 ]; then
    log "failed: starting ${stopped[*]} again"
    restart_writers || true
  fi
}
trap on_failure EXIT
if [ "${#stopped[@]}" -gt 0 ]; then
  log "stopping ${stopped[*]} (workers finish their running tasks first)"
  docker compose stop "${stopped[@]}"
fi

# lock_timeout: a forgotten client holding a lock makes the restore fail (and roll back), not hang.
in_postgres env PGOPTIONS='-c lock_timeout=120s' pg_restore --dbname="$db" --clean --if-exists \
  --single-transaction --exit-on-error --no-password < "$file" || die "pg_restore failed; database '$db' is unchanged"
log "database '$db' restored"

if [ "$db" = airflow ] && [ "$(schema_revision)" != "$before" ]; then
  log "the dump's schema revision differs from this Airflow's: migrating with airflow-init"
  trap - EXIT  # a failed migration must not start Airflow on a half-migrated schema
  docker compose run --rm --no-deps -T airflow-init \
    || die "airflow-init failed after the restore; services left stopped: ${stopped[*]}"
fi

trap - EXIT
restart_writers
"${PYTHON:-python3}" scripts/wait_healthy.py --timeout "${WAIT_TIMEOUT:-900}"
if [ "$db" = airflow ]; then
  log "now: $(sql airflow 'SELECT count(*) FROM dag_run;') DAG runs, $(sql airflow 'SELECT count(*) FROM task_instance;') task instances"
fi
