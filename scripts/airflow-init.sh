#!/usr/bin/env bash
# The one-shot init step of the stack (compose service `airflow-init`): checks the secrets it was
# given, migrates the metadata database (straight to Postgres, not through PgBouncer), creates the
# admin user from .env, the example DAGs' demo database, and the pools declared in config/pools.json.
# Every later service waits for it to exit 0; any failure stops `make up` with the message below.
# Change pools in config/pools.json.
set -euo pipefail

log() { printf '[airflow-init] %s\n' "$*"; }
die() { printf '[airflow-init] ERROR: %s\n' "$*" >&2; exit 1; }

jwt_bytes=$(printf '%s' "${AIRFLOW__API_AUTH__JWT_SECRET}" | wc -c)
[ "$jwt_bytes" -ge 64 ] || die "AIRFLOW_JWT_SECRET has ${jwt_bytes} bytes; HS512 tokens need at least 64 (make env generates one)"
python - <<'PY' || die "AIRFLOW_FERNET_KEY is not a valid Fernet key (32 url-safe base64-encoded bytes; make env generates one)"
import os
from cryptography.fernet import Fernet
Fernet(os.environ["AIRFLOW__CORE__FERNET_KEY"].encode())
PY

log "migrating the metadata database"
airflow db migrate

log "ensuring admin user '${AIRFLOW_ADMIN_USER}'"
if airflow users list --output json | python -c 'import json, sys; sys.exit(0 if any(u["username"] == sys.argv[1] for u in json.load(sys.stdin)) else 1)' "${AIRFLOW_ADMIN_USER}"; then
  # .env is the source of truth for the password: a changed AIRFLOW_ADMIN_PASSWORD takes effect.
  airflow users reset-password --username "${AIRFLOW_ADMIN_USER}" --password "${AIRFLOW_ADMIN_PASSWORD}"
else
  airflow users create --username "${AIRFLOW_ADMIN_USER}" --password "${AIRFLOW_ADMIN_PASSWORD}" \
    --role Admin --firstname Airflow --lastname Admin --email "${AIRFLOW_ADMIN_USER}@localhost"
fi

log "ensuring the demo database of the example DAGs"
python /opt/airflow/scripts/create_demo_db.py

log "creating pools from config/pools.json"
airflow pools import /opt/airflow/config/pools.json

log "done"
