"""The Airflow REST API as the tests use it: the official apache-airflow-client, with a JWT from
the api-server's /auth/token endpoint for the admin user of the stack's .env."""

from __future__ import annotations

import time
from dataclasses import dataclass

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

TERMINAL = {"success", "failed"}


def access_token(base_url: str, username: str, password: str) -> str:
    response = requests.post(
        f"{base_url}/auth/token", json={"username": username, "password": password}, timeout=30
    )
    response.raise_for_status()
    return response.json()["access_token"]


@dataclass
class AirflowApi:
    base_url: str
    username: str
    password: str

    def __post_init__(self) -> None:
        config = af.Configuration(
            host=self.base_url, access_token=access_token(self.base_url, self.username, self.password)
        )
        self.api_client = af.ApiClient(config)
        self.dags = DAGApi(self.api_client)
        self.runs = DagRunApi(self.api_client)
        self.tis = TaskInstanceApi(self.api_client)
        self.errors = ImportErrorApi(self.api_client)

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.dags.get_dag(dag_id)
                return
            except ApiException as error:
                if error.status != 404 or time.monotonic() > deadline:
                    raise
            time.sleep(3)

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        self.wait_for_dag(dag_id)
        self.dags.patch_dag(dag_id, DAGPatchBody(is_paused=False))
        run = self.runs.trigger_dag_run(dag_id, TriggerDAGRunPostBody(logical_date=None, conf=conf or {}))
        return run.dag_run_id

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
