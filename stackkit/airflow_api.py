"""The Airflow REST API (/api/v2) of a stack: the official apache-airflow-client, pinned to the
stack's Airflow version, with a JWT from the api-server's /auth/token for a user of its env file."""

from __future__ import annotations

import time
from typing import Any

import airflow_client.client as af
import requests
from airflow_client.client.api.dag_api import DAGApi
from airflow_client.client.api.dag_run_api import DagRunApi
from airflow_client.client.api.import_error_api import ImportErrorApi
from airflow_client.client.api.task_instance_api import TaskInstanceApi
from airflow_client.client.models.dag_patch_body import DAGPatchBody
from airflow_client.client.models.task_instance_response import TaskInstanceResponse
from airflow_client.client.models.trigger_dag_run_post_body import TriggerDAGRunPostBody
from airflow_client.client.rest import ApiException

from stackkit.errors import StackError

TERMINAL = {"success", "failed"}


def access_token(base_url: str, username: str, password: str, retry_for: float = 0) -> str:
    """A JWT for the user. RETRY_FOR seconds: keep asking that long (a just-healthy api-server may
    still warm up); 0: one request, whose HTTP error is raised as it is."""
    deadline = time.monotonic() + retry_for
    while True:
        try:
            response = requests.post(
                f"{base_url}/auth/token", json={"username": username, "password": password}, timeout=30
            )
            response.raise_for_status()
            return str(response.json()["access_token"])
        except (requests.RequestException, KeyError, ValueError) as error:
            if not retry_for:
                raise
            if time.monotonic() > deadline:
                raise StackError(f"no API token from {base_url}/auth/token: {error}") from error
            time.sleep(3)


class AirflowApi:
    """The endpoints the tests and the benchmark use; the client's API objects stay reachable
    (dags, runs, tis, errors) for anything else."""

    def __init__(self, base_url: str, username: str, password: str, token_retry_for: float = 0) -> None:
        token = access_token(base_url, username, password, retry_for=token_retry_for)
        client = af.ApiClient(af.Configuration(host=base_url, access_token=token))
        self.dags = DAGApi(client)
        self.runs = DagRunApi(client)
        self.tis = TaskInstanceApi(client)
        self.errors = ImportErrorApi(client)

    def dag_listed(self, dag_id: str) -> bool:
        """Has the dag-processor parsed the DAG (is it served by the API)?"""
        try:
            self.dags.get_dag(dag_id)
            return True
        except ApiException as error:
            if error.status != 404:
                raise StackError(f"GET dag {dag_id}: HTTP {error.status} {error.reason}") from error
            return False

    def wait_for_dag(self, dag_id: str, timeout: float = 180, every: float = 3) -> float:
        """Wait until the dag-processor has parsed the DAG; the seconds it took."""
        started = time.monotonic()
        while not self.dag_listed(dag_id):
            if time.monotonic() - started > timeout:
                raise StackError(f"DAG {dag_id} not parsed after {timeout:.0f} s (is its folder mounted?)")
            time.sleep(every)
        return time.monotonic() - started

    def unpause(self, dag_id: str) -> None:
        self.dags.patch_dag(dag_id, DAGPatchBody(is_paused=False))

    def trigger_run(self, dag_id: str, run_id: str | None, conf: dict[str, Any]) -> str:
        """A manual run now (no logical date), with RUN_ID if given (else Airflow names it); its run id."""
        body = TriggerDAGRunPostBody(dag_run_id=run_id, logical_date=None, conf=conf)
        try:
            return str(self.runs.trigger_dag_run(dag_id, body).dag_run_id)
        except ApiException as error:
            raise StackError(f"trigger {dag_id}: HTTP {error.status} {error.body}") from error

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Wait for the DAG, unpause it and trigger a run; its run id."""
        self.wait_for_dag(dag_id)
        self.unpause(dag_id)
        return self.trigger_run(dag_id, None, conf or {})

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.runs.get_dag_run(dag_id, run_id).state.value)

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 600) -> str:
        deadline = time.monotonic() + timeout
        while True:
            state = self.run_state(dag_id, run_id)
            if state in TERMINAL or time.monotonic() > deadline:
                return state
            time.sleep(3)

    def task_instances(self, dag_id: str, run_id: str) -> list[TaskInstanceResponse]:
        found: list[TaskInstanceResponse] = []
        while True:
            page = self.tis.get_task_instances(dag_id, run_id, limit=100, offset=len(found))
            found.extend(page.task_instances)
            if len(found) >= page.total_entries or not page.task_instances:
                return found

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> TaskInstanceResponse:
        return self.tis.get_task_instance(dag_id, run_id, task_id)

    def import_errors(self) -> list[str]:
        response = self.errors.get_import_errors()
        return [f"{e.filename}: {e.stack_trace}" for e in response.import_errors]

    def log(self, ti: TaskInstanceResponse) -> str:
        response = self.tis.get_log(
            ti.dag_id, ti.dag_run_id, ti.task_id, ti.try_number, full_content=True, map_index=ti.map_index
        )
        parts = response.content.actual_instance or []
        return "\n".join(part if isinstance(part, str) else part.event for part in parts)
