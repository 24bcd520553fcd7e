#!/usr/bin/env bash
# The one-shot init step of the stack (compose service `airflow-init`): checks the secrets it was
# given, migrates the metadata database (straight to Postgres, not through PgBouncer), creates the
# admin user from .env, the example DAGs' demo database and the pools declared in config/pools.json.
# default_pool is left to the worker-capacity service, which sizes it to the live workers.
# Every later service waits for it to exit 0; any failure stops `make up` with the message below.
# Change pools in config/pools.json.
set -euo pipefail

log() { printf '[airflow-init] %s\n' "$*"; }
die() { printf '[airflow-init] ERROR: %s\n' "$*" >&2; exit 1; }

jwt_bytes=$(printf '%s' "${AIRFLOW__API_AUTH__JWT_SECRET}" | wc -c)
[ "$jwt_bytes" -ge 64 ] || die "AIRFLOW_JWT_SECRET has ${jwt_bytes} bytes; HS512 tokens need at least 64 (make env generates one)"
python - <<'PY' || die "AIRFLOW_FERNET_KEY is not a valid Fernet key (32 url-safe base64-encoded bytes; make env generates one)"
import os
import sys

from cryptography.fernet import Fernet

try:
    Fernet(os.environ["AIRFLOW__CORE__FERNET_KEY"].encode())
except ValueError:
    sys.exit(1)
PY

log "logging in to Postgres"
# A wrong password must say which one and why, not end a migration traceback: Postgres keeps the
# password it was initialised with in its volume, and a changed POSTGRES_PASSWORD does not reach it.
python - <<'PY' || exit 1
import os
import sys

import sqlalchemy

url = sqlalchemy.engine.make_url(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
try:
    sqlalchemy.create_engine(url).connect().close()
except sqlalchemy.exc.OperationalError as error:
    reason = str(error.orig).strip().splitlines()[0]
    if "password authentication failed" in reason:
        sys.exit(
            f"[airflow-init] ERROR: Postgres refused POSTGRES_PASSWORD for role {url.username!r} ({reason}). "
            "The postgres-data volume keeps the password it was created with: put that one back in .env, "
            "or change it in Postgres first (ALTER ROLE), or start afresh with `make clean` (deletes all data)."
        )
    sys.exit(f"[airflow-init] ERROR: cannot connect to Postgres at {url.host}:{url.port}: {reason}")
PY

log "migrating the metadata database"
airflow db migrate

log "ensuring admin user '${AIRFLOW_ADMIN_USER}'"
# Each FAB CLI call costs ~5 s: read the user table first, so a re-run with the same password costs none.
admin=$(python - <<'PY'
import os

import sqlalchemy
from werkzeug.security import check_password_hash

engine = sqlalchemy.create_engine(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
with engine.connect() as connection:
    user = connection.execute(
        sqlalchemy.text("SELECT password FROM ab_user WHERE username = :name"),
        {"name": os.environ["AIRFLOW_ADMIN_USER"]},
    ).first()
if user is None:
    print("absent")
elif user.password and check_password_hash(user.password, os.environ["AIRFLOW_ADMIN_PASSWORD"]):
    print("unchanged")
else:
    print("changed")  # a user without a password gets the one of .env too
PY
) || die "could not read the admin user '${AIRFLOW_ADMIN_USER}' from the metadata database"
case "$admin" in
  absent)
    airflow users create --username "${AIRFLOW_ADMIN_USER}" --password="${AIRFLOW_ADMIN_PASSWORD}" \
      --role Admin --firstname Airflow --lastname Admin --email "${AIRFLOW_ADMIN_USER}@localhost" \
      || die "could not create the admin user '${AIRFLOW_ADMIN_USER}'"
    ;;
  changed)
    log "AIRFLOW_ADMIN_PASSWORD changed in .env: resetting the password of '${AIRFLOW_ADMIN_USER}'"
    airflow users reset-password --username "${AIRFLOW_ADMIN_USER}" --password="${AIRFLOW_ADMIN_PASSWORD}"
    ;;
  unchanged) log "admin user '${AIRFLOW_ADMIN_USER}' exists with the password of .env" ;;
  *) die "unexpected answer about the admin user: ${admin}" ;;
esac

log "ensuring the demo database of the example DAGs"
python /opt/airflow/scripts/create_demo_db.py

log "creating pools from config/pools.json"
airflow pools import /opt/airflow/config/pools.json

# default_pool's size is not set here: the worker-capacity service sizes it to the live workers' slots.

log "done"
