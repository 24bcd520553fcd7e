#!/usr/bin/env bash
# Logical backup of the stack's databases: `airflow` (Airflow's metadata) and `demo` (the example DAGs'
# data). pg_dump --format=custom runs inside the running postgres container, with the credentials of
# that container's own environment (no password on any command line); each dump is read back whole
# with pg_restore, then kept as backups/<db>-<UTC timestamp>.dump, mode 600. Then retention: dumps
# older than BACKUP_RETENTION_DAYS are deleted, but the newest of each database is always kept.
# Run by `make backup`, or by hand from anywhere. It addresses the stack the way `docker compose` does:
# COMPOSE_PROJECT_NAME, COMPOSE_FILE and COMPOSE_ENV_FILES (default: the repository's docker-compose.yml
# and .env); relative paths are taken from the repository root.
# Change: BACKUP_RETENTION_DAYS and BACKUP_DIR in .env (defaults 7, backups/); BACKUP_DATABASES
# (default "airflow demo") in the environment. Restore with scripts/restore.sh (make restore FILE=...).
# A dump holds Fernet-encrypted connections and variables: keep a copy of .env (AIRFLOW_FERNET_KEY), as
# secret as .env itself, wherever the backups go, or those values cannot be read after a restore.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[backup] %s\n' "$*"; }
die() { printf '[backup] ERROR: %s\n' "$*" >&2; exit 1; }

# NAME's value from the environment, else from the compose env files (the last one wins), else DEFAULT.
setting() {
  local name=$1 default=$2 value=${!1:-} file line
  local -a files
  if [ -z "$value" ]; then
    IFS=',' read -r -a files <<< "${COMPOSE_ENV_FILES:-.env}"
    for file in "${files[@]}"; do
      [ -r "$file" ] || continue
      line=$(grep -E "^${name}=" "$file" | tail -n 1 || true)
      if [ -n "$line" ]; then
        value=${line#*=}
        value=${value//\"/}
        value=${value//\'/}
      fi
    done
  fi
  printf '%s' "${value:-$default}"
}

# A client program run inside the postgres container as its superuser (POSTGRES_USER), password from the
# container's POSTGRES_PASSWORD; stdin and stdout pass through.
in_postgres() {
  # shellcheck disable=SC2016  # expanded by the container's shell, on purpose
  docker compose exec -T postgres sh -c 'PGUSER="$POSTGRES_USER" PGPASSWORD="$POSTGRES_PASSWORD" exec "$@"' sh "$@"
}

retention_days=$(setting BACKUP_RETENTION_DAYS 7)
[[ $retention_days =~ ^[0-9]+$ ]] || die "BACKUP_RETENTION_DAYS must be a whole number of days, not '${retention_days}'"
backup_dir=$(setting BACKUP_DIR backups)
read -r -a databases <<< "${BACKUP_DATABASES:-airflow demo}"

[ -n "$(docker compose ps --status running --quiet postgres 2>/dev/null)" ] \
  || die "the postgres service of this stack is not running (make up first)"

umask 077
mkdir -p "$backup_dir"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
partial=""
trap '[ -z "$partial" ] || rm -f -- "$partial"' EXIT

for db in "${databases[@]}"; do
  final="$backup_dir/$db-$stamp.dump"
  partial="$backup_dir/.$db-$stamp.dump.partial"
  [ ! -e "$final" ] || die "$final exists already"
  # db_backup: the db-backup service's monitoring state (scripts/db-backup-loop.sh), never restored.
  in_postgres pg_dump --format=custom --exclude-schema=db_backup --dbname="$db" > "$partial" \
    || die "pg_dump of database '$db' failed"
  # Read it back, every byte: a dump pg_restore cannot read is no backup. Nothing is deleted before this.
  [ "$(head -c 5 "$partial")" = PGDMP ] || die "pg_dump of '$db' did not write a custom-format archive"
  in_postgres pg_restore --file=/dev/null < "$partial" || die "pg_restore cannot read the dump of '$db' back"
  mv -- "$partial" "$final"
  partial=""
  log "$final ($(du -h -- "$final" | cut -f1))"
done

# Retention, per database: older than N days goes, the newest stays whatever its age.
for db in "${databases[@]}"; do
  mapfile -t dumps < <(find "$backup_dir" -maxdepth 1 -type f -regextype posix-extended \
    -regex ".*/${db}-[0-9]{8}T[0-9]{6}Z\.dump" | sort)
  [ "${#dumps[@]}" -gt 1 ] || continue
  newest=${dumps[-1]}
  while IFS= read -r old; do
    [ "$old" = "$newest" ] && continue
    rm -f -- "$old"
    log "deleted $old (older than ${retention_days} days)"
  done < <(find "${dumps[@]}" -maxdepth 0 -mmin "+$((retention_days * 1440))")
done
