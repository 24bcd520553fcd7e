#!/usr/bin/env bash
# `make backup`: logical backups of the stack's databases, `airflow` (Airflow's metadata) and `demo` (the
# example DAGs' data), now. It runs scripts/db-backup.sh once, the same code as the scheduled db-backup
# service, in a throwaway container of that service (`docker compose run --rm --no-deps db-backup once`,
# the postgres image already in the stack, BACKUP_DIR mounted): each dump is read back whole, then kept as
# BACKUP_DIR/<db>-<UTC timestamp>.dump, mode 600, owned by BACKUP_DIR's owner; then dumps older than
# BACKUP_RETENTION_DAYS are deleted, but the newest of each database is always kept. It does not change the
# service's state in db_backup.status (BackupTooOld is about the scheduled backups).
# Run by `make backup`, or by hand from anywhere. It addresses the stack the way `docker compose` does:
# COMPOSE_PROJECT_NAME, COMPOSE_FILE and COMPOSE_ENV_FILES (default: the repository's docker-compose.yml
# and .env); relative paths are taken from the repository root.
# Change: BACKUP_RETENTION_DAYS and BACKUP_DIR in .env (defaults 7, backups/); BACKUP_DATABASES
# (default "airflow demo") in the environment. Restore with scripts/restore.sh (make restore FILE=...).
# A dump holds Fernet-encrypted connections and variables: keep a copy of .env (AIRFLOW_FERNET_KEY), as
# secret as .env itself, wherever the backups go, or those values cannot be read after a restore.
set -euo pipefail
cd "$(dirname "$0")/.."

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

retention_days=$(setting BACKUP_RETENTION_DAYS 7)
# The settings checked by the same code as the service's, before Docker or any file is touched.
BACKUP_RETENTION_DAYS=$retention_days sh scripts/db-backup.sh check || exit 1
backup_dir=$(setting BACKUP_DIR backups)

postgres=$(docker compose ps --status running --quiet postgres 2>/dev/null || true)
[ -n "$postgres" ] || die "the postgres service of this stack is not running (make up first)"
# The image the running postgres has (official or the offline stand-in), whatever this shell's settings.
image=$(docker inspect --format '{{.Config.Image}}' "$postgres")

# Created here, as the user running this, so that the dumps are the user's (Docker would create it as root).
(umask 077 && mkdir -p -- "$backup_dir")
backup_dir=$(realpath -- "$backup_dir")
# BACKUP_DIR and POSTGRES_IMAGE in the environment win over the env files in compose's interpolation:
# the mount is this directory, the image the one running.
BACKUP_DIR=$backup_dir POSTGRES_IMAGE=$image docker compose run --rm --no-deps -T \
  -e BACKUP_RETENTION_DAYS="$retention_days" -e BACKUP_DATABASES="${BACKUP_DATABASES:-airflow demo}" \
  -e BACKUP_SHOWN_DIR="$backup_dir" db-backup once \
  || die "the backup failed (see above); nothing older was deleted for a database whose dump failed"
