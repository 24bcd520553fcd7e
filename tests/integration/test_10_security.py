"""Secure by default, checked on the running stack: every door refuses whoever lacks the key, nothing runs
as root but cAdvisor (which needs it, and keeps one capability), nothing the containers read from the
repository can be written by them, and no secret is baked into the Airflow image. Checked elsewhere and
not repeated here: only the UIs published, on 127.0.0.1 (test_01), Flower and Grafana refusing anonymous
users (test_01, test_08), a missing secret stopping compose (tests/unit/test_compose_file.py), `.env`
created with mode 600 (tests/unit)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time

import pytest
import requests

from stackkit import REPO, envfile
from stackkit.airflow_api import access_token
from tests.integration.testbed import IntegrationStack
from tests.unit.compose import SECRETS

AIRFLOW_RUNTIME = [
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "flower",
]
# The user (uid) every process of each service runs as. No service keeps root: postgres' entrypoint
# starts as root only to take ownership of its data volume, then execs postgres as 999; redis runs as
# `user: redis` from the start. A service missing here fails the test: add it with its user.
EXPECTED_UID = {
    "postgres": 999,  # the image's postgres user
    "redis": 999,  # the image's redis user (user: redis in docker-compose.yml)
    "pgbouncer": 70,  # the image's postgres user (edoburu and the offline stand-in alike)
    "statsd-exporter": 65534,  # nobody, the image's USER
    "airflow-apiserver": 50000,  # airflow, the Airflow image's USER (group 0, as Airflow requires)
    "airflow-scheduler": 50000,
    "airflow-dag-processor": 50000,
    "airflow-triggerer": 50000,
    "airflow-worker": 50000,
    "flower": 50000,
    "webhook-receiver": 50000,
    "worker-capacity": 50000,
    "postgres-exporter": 65534,  # user: in docker-compose.yml
    "redis-exporter": 59000,  # the image's USER
    "pgbouncer-exporter": 65534,
    "alertmanager": 65534,
    "prometheus": 65534,  # nobody, the image's USER
    "grafana": 472,  # the image's grafana user
    "node-exporter": 65534,  # user: in docker-compose.yml
    "cadvisor": 0,  # the one root service: ROOT_BY_NEED says why, and test_cadvisor_... what it may do
    # db-backup (postgres image) runs as the owner of BACKUP_DIR on the host, or postgres (999) when
    # that is root; it must be able to write there, and never needs root to do so: see backup_uid().
}
# Services that keep root, with the reason; each is held to its capabilities below.
ROOT_BY_NEED = {
    "cadvisor": "reads the Docker socket (container names), Docker's layer index (/var/lib/docker/image, "
    "mode 0700 root) and /dev/kmsg (OOM kills): a non-root user would need capabilities Docker does not "
    "give non-root processes",
}
# Bind mounts from the host that a service may write to, with the reason. Everything else is read-only.
WRITABLE_BINDS: dict[str, set[str]] = {
    "db-backup": {"/backups"},  # the scheduled backups land in BACKUP_DIR on the host
}


def backup_uid(stack: IntegrationStack) -> int:
    return stack.backup_dir.stat().st_uid or 999


def forged_token() -> str:
    """A well-formed HS512 JWT for user 1, signed with a key that is not the stack's."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    header = b64(json.dumps({"alg": "HS512", "typ": "JWT"}).encode())
    claims = {"sub": "1", "iat": now, "nbf": now, "exp": now + 600, "aud": "apache-airflow"}
    payload = b64(json.dumps(claims).encode())
    signature = hmac.new(secrets.token_bytes(64), f"{header}.{payload}".encode(), hashlib.sha512).digest()
    return f"{header}.{payload}.{b64(signature)}"


def smoke_runs(stack: IntegrationStack) -> int:
    (row,) = stack.sql("SELECT count(*) FROM dag_run WHERE dag_id = 'smoke_mapped'")
    return int(row[0])


def paused(stack: IntegrationStack) -> dict[str, str]:
    """Each DAG's is_paused, as Postgres prints it (t/f)."""
    return {dag_id: is_paused for dag_id, is_paused in stack.sql("SELECT dag_id, is_paused FROM dag")}


JSON_TYPE = {"Content-Type": "application/json"}
# Malformed requests to Airflow's REST API and login: (method, path, body, headers, the statuses that
# refuse the input itself once the caller is authenticated). A JSON body that does not parse is refused
# (422, or 400 for bytes FastAPI cannot read) before authentication is even looked at.
TRIGGER_SMOKE = "/api/v2/dags/smoke_mapped/dagRuns"
MALFORMED = [
    ("POST", TRIGGER_SMOKE, b'{"conf": {"count": ', JSON_TYPE, {400, 422}),
    ("POST", TRIGGER_SMOKE, b'{"conf": "x", "logical_date": 12}', JSON_TYPE, {400, 422}),
    ("POST", TRIGGER_SMOKE, b"\xff\xfe\x00garbage", JSON_TYPE, {400, 422}),
    # No route has slashes in a dag_id: not found, or only the UI's GET catch-all matches (405).
    ("PATCH", "/api/v2/dags/..%2F..%2Fetc%2Fpasswd", b'{"is_paused": false}', JSON_TYPE, {404, 405}),
    # A negative limit (422) and SQL as the sort key (400: not a sortable column).
    ("GET", "/api/v2/dags?limit=-1&order_by=%27%3B%20DROP%20TABLE%20dag%3B--", b"", {}, {400, 422}),
    (
        "POST",
        "/auth/token",
        b"username=admin&password=",
        {"Content-Type": "application/x-www-form-urlencoded"},
        {400, 415, 422},  # the login takes a JSON body only
    ),
    ("POST", "/auth/token", b"{", JSON_TYPE, {400, 422}),
]
# The Execution API takes only a task's own token, which the scheduler mints for a queued try: with a
# user's credentials it is an authentication test, so it is in the test without credentials alone.
MALFORMED_EXECUTION = ("PATCH", "/execution/task-instances/not-a-uuid/run", b"{", JSON_TYPE)


# --- Airflow: REST API, Execution API, login ---------------------------------------------------------
def test_airflow_api_refuses_requests_without_a_token(stack: IntegrationStack) -> None:
    base = stack.url("AIRFLOW_API_PORT")
    for path in (
        "/api/v2/dags",
        "/api/v2/variables",
        "/api/v2/connections",
        "/api/v2/config",
        "/api/v2/pools",
    ):
        response = requests.get(f"{base}{path}", timeout=30)
        assert response.status_code in (401, 403), f"GET {path}: {response.status_code} {response.text[:200]}"
    response = requests.post(f"{base}/api/v2/dags/smoke_mapped/dagRuns", json={"conf": {}}, timeout=30)
    assert response.status_code in (401, 403), response.text[:200]


def test_airflow_api_refuses_forged_and_foreign_credentials(stack: IntegrationStack) -> None:
    url = f"{stack.url('AIRFLOW_API_PORT')}/api/v2/dags"
    for authorization in (
        f"Bearer {forged_token()}",
        "Bearer not-a-jwt",
        "Basic " + base64.b64encode(f"{stack.env['AIRFLOW_ADMIN_USER']}:wrong".encode()).decode(),
    ):
        response = requests.get(url, headers={"Authorization": authorization}, timeout=30)
        assert response.status_code in (401, 403), f"{authorization[:12]}...: {response.status_code}"


def test_malformed_requests_without_credentials_are_refused_and_change_nothing(
    stack: IntegrationStack,
) -> None:
    """Refused with a client error (401/403, or 400/422 where the body cannot even be parsed), never
    a 5xx, and no DAG run appears."""
    base = stack.url("AIRFLOW_API_PORT")
    before = smoke_runs(stack)
    attempts = [(method, path, body, headers) for method, path, body, headers, _ in MALFORMED]
    for method, path, body, headers in [*attempts, MALFORMED_EXECUTION]:
        response = requests.request(method, f"{base}{path}", data=body, headers=headers, timeout=30)
        assert 400 <= response.status_code < 500, (
            f"{method} {path}: {response.status_code} {response.text[:200]}"
        )
    assert smoke_runs(stack) == before, "a request without credentials created a DAG run"


def test_malformed_requests_with_valid_credentials_are_refused_as_bad_input_and_change_nothing(
    stack: IntegrationStack,
) -> None:
    """The same requests from the admin, past authentication: each is refused for its input, with the
    client error that says so (never 401/403, which would mean the token was what failed, nor a 5xx),
    and nothing changes: no DAG run, no DAG paused or unpaused, the dag table still there."""
    base = stack.url("AIRFLOW_API_PORT")
    token = access_token(base, stack.env["AIRFLOW_ADMIN_USER"], stack.env["AIRFLOW_ADMIN_PASSWORD"])
    bearer = {"Authorization": f"Bearer {token}"}
    # The token opens the door: a well-formed request with it is answered.
    response = requests.get(f"{base}/api/v2/dags/smoke_mapped", headers=bearer, timeout=30)
    assert response.status_code == 200, f"{response.status_code} {response.text[:200]}"
    runs_before, paused_before = smoke_runs(stack), paused(stack)
    assert paused_before, "no DAG in the dag table"
    wrong = []
    for method, path, body, headers, refused in MALFORMED:
        response = requests.request(
            method, f"{base}{path}", data=body, headers={**headers, **bearer}, timeout=30
        )
        if response.status_code not in refused:
            wrong.append(
                f"{method} {path}: {response.status_code}, not {sorted(refused)}: {response.text[:200]}"
            )
    assert not wrong, "\n".join(wrong)
    assert smoke_runs(stack) == runs_before, "a malformed request created a DAG run"
    paused_after = paused(stack)
    changed = sorted(dag_id for dag_id, state in paused_before.items() if paused_after.get(dag_id) != state)
    assert not changed, f"a malformed request paused or unpaused {changed}"


def test_execution_api_refuses_requests_without_a_task_token(stack: IntegrationStack) -> None:
    """The workers' API is served on the same published port: it must want a task's token too."""
    url = f"{stack.url('AIRFLOW_API_PORT')}/execution/variables/anything"
    assert requests.get(url, timeout=30).status_code in (401, 403)
    forged = {"Authorization": f"Bearer {forged_token()}"}
    assert requests.get(url, headers=forged, timeout=30).status_code in (401, 403)


def test_wrong_passwords_are_refused_by_airflow_and_flower(stack: IntegrationStack) -> None:
    login = requests.post(
        f"{stack.url('AIRFLOW_API_PORT')}/auth/token",
        json={"username": stack.env["AIRFLOW_ADMIN_USER"], "password": "wrong-" + secrets.token_hex(8)},
        timeout=30,
    )
    assert login.status_code == 401, login.text[:200]
    flower = requests.get(
        f"{stack.url('FLOWER_PORT')}/api/workers", auth=(stack.env["FLOWER_USER"], "wrong"), timeout=30
    )
    assert flower.status_code == 401


@pytest.fixture
def grafana(stack: IntegrationStack) -> str:
    if not stack.with_grafana:
        pytest.skip(f"live Grafana not tested: image {stack.grafana_image} is not present on this machine")
    return stack.url("GRAFANA_PORT")


def test_grafana_refuses_a_wrong_password(grafana: str, stack: IntegrationStack) -> None:
    response = requests.get(
        f"{grafana}/api/search", auth=(stack.env["GRAFANA_ADMIN_USER"], "wrong"), timeout=30
    )
    assert response.status_code == 401


# --- Redis, Postgres, PgBouncer ------------------------------------------------------------------------
def test_redis_refuses_clients_without_the_password(stack: IntegrationStack) -> None:
    redis = stack.container("redis")
    _, out = redis.exec_run(["env", "-u", "REDISCLI_AUTH", "redis-cli", "-h", "127.0.0.1", "ping"])
    assert "NOAUTH" in out.decode(), out
    _, out = redis.exec_run(
        ["env", "-u", "REDISCLI_AUTH", "redis-cli", "-h", "127.0.0.1", "-a", "wrong", "ping"]
    )
    assert re.search("WRONGPASS|invalid password", out.decode()), out
    # From another container over the compose network, as any client would come.
    probe = (
        "import socket\n"
        "s = socket.create_connection(('redis', 6379), timeout=5)\n"
        "s.sendall(b'PING\\r\\n'); print(s.recv(200))\n"
        "s.sendall(b'AUTH not-the-password\\r\\n'); print(s.recv(200))\n"
    )
    out = stack.exec("airflow-worker", ["python", "-c", probe])
    assert "NOAUTH" in out, out
    assert "WRONGPASS" in out, out


@pytest.mark.parametrize(
    ("host", "port"), [("postgres", "5432"), ("127.0.0.1", "6432")], ids=["postgres", "pgbouncer"]
)
@pytest.mark.parametrize("role", ["airflow", "demo"])
def test_postgres_and_pgbouncer_refuse_a_wrong_password(
    stack: IntegrationStack, host: str, port: str, role: str
) -> None:
    pgbouncer = stack.container("pgbouncer")
    database = "airflow" if role == "airflow" else "demo"
    command = ["psql", f"--host={host}", f"--port={port}", f"--username={role}", f"--dbname={database}"]
    command += ["--no-psqlrc", "--tuples-only", "--no-align", "--command=SELECT 1"]
    right = stack.env["POSTGRES_PASSWORD" if role == "airflow" else "DEMO_DB_PASSWORD"]
    code, out = pgbouncer.exec_run(command, environment={"PGPASSWORD": right})
    assert (code, out.decode().strip()) == (0, "1"), out  # the door opens with the key...
    code, out = pgbouncer.exec_run(command, environment={"PGPASSWORD": "wrong-" + secrets.token_hex(8)})
    assert code != 0, out  # ...and only with it
    assert re.search("password authentication failed|SASL authentication failed", out.decode()), out


def test_postgres_accepts_scram_sha_256_only(stack: IntegrationStack) -> None:
    methods = {
        row[0] for row in stack.sql("SELECT DISTINCT auth_method FROM pg_hba_file_rules WHERE error IS NULL")
    }
    assert methods == {"scram-sha-256"}, f"pg_hba.conf allows {methods}"
    weak = stack.sql(
        "SELECT rolname FROM pg_authid WHERE rolcanlogin AND rolpassword NOT LIKE 'SCRAM-SHA-256$%'"
    )
    assert not weak, f"roles without a SCRAM verifier: {weak}"


# --- Processes, mounts, image ----------------------------------------------------------------------------
def test_processes_run_as_the_expected_non_root_users(stack: IntegrationStack) -> None:
    """Every process descending from each container's main process; `docker exec` probes (health checks,
    these tests) are not descendants and are left out."""
    found: dict[str, set[int]] = {}
    for container in stack.containers():
        service = container.labels["com.docker.compose.service"]
        main_pid = str(container.attrs["State"]["Pid"])
        top = container.top(ps_args="-o pid,ppid,uid,comm")
        column = {title: i for i, title in enumerate(top["Titles"])}
        parent = {p[column["PID"]]: p[column["PPID"]] for p in top["Processes"]}
        for process in top["Processes"]:
            pid = process[column["PID"]]
            while pid in parent and pid != main_pid:
                pid = parent[pid]
            if pid == main_pid:
                found.setdefault(service, set()).add(int(process[column["UID"]]))
    expected = {**EXPECTED_UID, "db-backup": backup_uid(stack)}
    unknown = sorted(set(found) - set(expected))
    assert not unknown, f"services without an expected user in EXPECTED_UID: {unknown}"
    wrong = {s: uids for s, uids in found.items() if uids != {expected[s]}}
    assert not wrong, f"process users differ from EXPECTED_UID: {wrong}"
    rooted = {s for s, uids in found.items() if 0 in uids}
    assert rooted <= set(ROOT_BY_NEED), f"running as root: {sorted(rooted - set(ROOT_BY_NEED))}"


def test_cadvisor_runs_with_one_capability_and_a_read_only_view_of_the_host(stack: IntegrationStack) -> None:
    """The one root service (ROOT_BY_NEED): no privileged mode, every capability dropped but SYSLOG
    (/dev/kmsg, for OOM kills), no new privileges, a read-only root filesystem, read-only binds."""
    (cadvisor,) = stack.containers("cadvisor")
    host = cadvisor.attrs["HostConfig"]
    assert host["Privileged"] is False
    # The daemon may spell capabilities with their CAP_ prefix (Docker 20.10 does).
    assert [c.removeprefix("CAP_") for c in host["CapDrop"]] == ["ALL"]
    assert [c.removeprefix("CAP_") for c in host["CapAdd"]] == ["SYSLOG"]
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["ReadonlyRootfs"] is True
    assert [d["PathOnHost"] for d in host["Devices"]] == ["/dev/kmsg"]
    assert all(m["Type"] != "bind" or not m["RW"] for m in cadvisor.attrs["Mounts"])
    assert not any((cadvisor.attrs["NetworkSettings"]["Ports"] or {}).values()), "publishes a port"


def test_config_dags_and_plugins_are_read_only_in_every_airflow_container(stack: IntegrationStack) -> None:
    for service in AIRFLOW_RUNTIME:
        for container in stack.containers(service):
            mounts = {m["Destination"]: m for m in container.attrs["Mounts"]}
            for path in ("/opt/airflow/config", "/opt/airflow/dags", "/opt/airflow/plugins"):
                assert path in mounts, f"{container.name}: {path} not mounted"
                assert mounts[path]["RW"] is False, f"{container.name}: {path} is writable"


def test_every_bind_mount_from_the_host_is_read_only(stack: IntegrationStack) -> None:
    writable = []
    for container in stack.containers(include_stopped=True):
        service = container.labels["com.docker.compose.service"]
        for mount in container.attrs["Mounts"]:
            allowed = mount["Destination"] in WRITABLE_BINDS.get(service, set())
            if mount["Type"] == "bind" and mount["RW"] and not allowed:
                writable.append(f"{container.name}: {mount['Source']} -> {mount['Destination']}")
    assert not writable, f"writable bind mounts: {writable}"


def test_no_secret_in_the_airflow_image(stack: IntegrationStack) -> None:
    image = stack.container("airflow-apiserver").image
    layers = " ".join(str(layer.get("CreatedBy", "")) for layer in image.history())
    config = image.attrs["Config"]
    text = " ".join([layers, json.dumps(config.get("Env") or []), json.dumps(config.get("Labels") or {})])
    values = {stack.env[name] for name in SECRETS}
    if (REPO / ".env").exists():  # a developer's own .env must not have been built in either
        values |= {v for k, v in envfile.read(REPO / ".env").items() if k in SECRETS and v}
    leaked = sum(1 for value in values if value and value in text)
    assert not leaked, f"{leaked} secret value(s) in the image's history or config"  # values not printed
    names = [e.split("=", 1)[0] for e in config.get("Env") or []]
    suspicious = [n for n in names if re.search("PASSWORD|SECRET|FERNET|TOKEN|PRIVATE", n)]
    assert not suspicious, f"the image sets secret-looking variables: {suspicious}"


def test_no_env_file_inside_the_airflow_image(stack: IntegrationStack) -> None:
    """The image's own file system (-xdev: not the mounts), searched as root so no folder is skipped."""
    container = stack.container("airflow-apiserver")
    code, out = container.exec_run(["find", "/", "-xdev", "-name", ".env"], user="0")
    assert code == 0, out
    assert out.decode().strip() == "", f".env files in the image: {out.decode()}"
