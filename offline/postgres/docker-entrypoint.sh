#!/usr/bin/env bash
# Entrypoint of the offline postgres stand-in (offline/postgres/Dockerfile): the same contract as the
# official postgres image's docker-entrypoint.sh, which the compose file relies on:
# POSTGRES_PASSWORD (required), POSTGRES_USER, POSTGRES_DB, POSTGRES_INITDB_ARGS (and *_FILE
# variants), POSTGRES_HOST_AUTH_METHOD, /docker-entrypoint-initdb.d/*.sh|*.sql|*.sql.gz on first start.
# Change: only to follow the official script; differences are listed in offline/README.md.
set -Eeuo pipefail

log() { printf '%s [entrypoint] %s\n' "$(date -u +'%Y-%m-%d %H:%M:%S UTC')" "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# VAR or VAR_FILE (a Docker secret), never both; the default applies when neither is set.
file_env() {
  local var=$1 def=${2:-} file_var="${1}_FILE" val
  if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
    die "both $var and $file_var are set (but are exclusive)"
  fi
  val=$def
  if [ -n "${!var:-}" ]; then
    val=${!var}
  elif [ -n "${!file_var:-}" ]; then
    val=$(< "${!file_var}")
  fi
  export "$var"="$val"
  unset "$file_var"
}

# Help/version/config-inspection flags must not initialise a cluster (as in the official script).
wants_help() {
  local arg
  for arg; do
    case "$arg" in
      -'?'|--help|--describe-config|-V|--version) return 0 ;;
    esac
  done
  return 1
}

setup_env() {
  file_env POSTGRES_PASSWORD
  file_env POSTGRES_USER postgres
  file_env POSTGRES_DB "$POSTGRES_USER"
  file_env POSTGRES_INITDB_ARGS
  : "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
  DATABASE_ALREADY_EXISTS=
  if [ -s "$PGDATA/PG_VERSION" ]; then
    DATABASE_ALREADY_EXISTS=true
  fi
}

create_directories() {
  local user
  user=$(id -u)
  mkdir -p "$PGDATA"
  # initdb refuses a data directory other users can read.
  chmod 00700 "$PGDATA" || :
  mkdir -p /var/run/postgresql || :
  chmod 03775 /var/run/postgresql || :
  if [ "$user" = 0 ]; then
    find "$PGDATA" \! -user postgres -exec chown postgres: '{}' +
    find /var/run/postgresql \! -user postgres -exec chown postgres: '{}' +
  fi
}

verify_minimum_env() {
  if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
    cat >&2 <<'MSG'
Error: Database is uninitialized and superuser password is not specified.
       You must specify POSTGRES_PASSWORD to a non-empty value for the
       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".

       You may also use "POSTGRES_HOST_AUTH_METHOD=trust" to allow all
       connections without a password. This is *not* recommended.
MSG
    exit 1
  fi
  if [ "${#POSTGRES_PASSWORD}" -ge 100 ]; then
    log "WARNING: the password is 100+ characters; some PostgreSQL clients cut it at 99"
  fi
}

init_database_dir() {
  # The password goes through a pipe, never argv or a file, so `ps` and the volume never see it.
  # POSTGRES_INITDB_ARGS is split into words on purpose, as the official script does.
  # shellcheck disable=SC2086
  initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    --auth-host=scram-sha-256 --auth-local=trust $POSTGRES_INITDB_ARGS
}

setup_hba_conf() {
  {
    echo
    if [ "$POSTGRES_HOST_AUTH_METHOD" = trust ]; then
      echo '# warning trust is enabled for all connections'
    fi
    echo "host all all all $POSTGRES_HOST_AUTH_METHOD"
  } >> "$PGDATA/pg_hba.conf"
}

# A server on the Unix socket only, for the initialisation scripts; clients cannot connect early.
temp_server_start() {
  PGUSER=$POSTGRES_USER pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p ${PGPORT:-5432}" -w start
}

temp_server_stop() {
  PGUSER=$POSTGRES_USER pg_ctl -D "$PGDATA" -m fast -w stop
}

psql_init() {
  PGHOST='' PGHOSTADDR='' psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc "$@"
}

setup_db() {
  local exists
  exists=$(psql_init --dbname postgres --set db="$POSTGRES_DB" --tuples-only <<'SQL'
SELECT 1 FROM pg_database WHERE datname = :'db' ;
SQL
)
  if [ -z "$exists" ]; then
    psql_init --dbname postgres --set db="$POSTGRES_DB" <<'SQL'
CREATE DATABASE :"db" ;
SQL
    log "created database $POSTGRES_DB"
  fi
}

process_init_files() {
  local f
  for f in "$@"; do
    case "$f" in
      *.sh)
        # Executable scripts run in their own process; others are sourced (they may export).
        if [ -x "$f" ]; then
          log "running $f"; "$f"
        else
          log "sourcing $f"
          # Scripts written for the official image may use unset variables (it runs without -u).
          set +u
          # shellcheck disable=SC1090
          . "$f"
          set -u
        fi
        ;;
      *.sql) log "running $f"; psql_init --dbname "$POSTGRES_DB" -f "$f" ;;
      *.sql.gz) log "running $f"; gunzip -c "$f" | psql_init --dbname "$POSTGRES_DB" ;;
      *.sql.xz) log "running $f"; xzcat "$f" | psql_init --dbname "$POSTGRES_DB" ;;
      *.sql.zst) log "running $f"; zstd -dc "$f" | psql_init --dbname "$POSTGRES_DB" ;;
      *) log "ignoring $f" ;;
    esac
  done
}

main() {
  if [ "$#" -eq 0 ]; then
    set -- postgres
  fi
  # Flags alone mean "postgres with these flags".
  if [ "${1:0:1}" = '-' ]; then
    set -- postgres "$@"
  fi

  if [ "$1" = postgres ] && ! wants_help "$@"; then
    setup_env
    create_directories
    if [ "$(id -u)" = 0 ]; then
      # Restart this script as postgres; PostgreSQL refuses to run as root.
      exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
    fi

    if [ -z "$DATABASE_ALREADY_EXISTS" ]; then
      verify_minimum_env
      # Fail before initdb, not halfway through the scripts, when the directory is unreadable.
      ls /docker-entrypoint-initdb.d/ > /dev/null
      init_database_dir
      setup_hba_conf
      # Lets initialisation scripts reach the temporary server without a password.
      export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
      temp_server_start
      setup_db
      shopt -s nullglob
      process_init_files /docker-entrypoint-initdb.d/*
      shopt -u nullglob
      temp_server_stop
      unset PGPASSWORD
      log "PostgreSQL init process complete; ready for start up."
    else
      log "PostgreSQL Database directory appears to contain a database; Skipping initialization"
    fi
  fi

  exec "$@"
}

main "$@"
