"""The Airflow REST API as the benchmark uses it: wait for its DAG, unpause it, trigger a run with a
run id of its own. The official apache-airflow-client, with a JWT from the api-server's /auth/token
for the admin user of the benchmark stack's env file. Everything measured is read from the metadata
database instead (bench/measure.py), so API latency never enters a figure.
"""

from __future__ import annotations

import time

import airflow_client.client as af
import requests
from airflow_client.client.api.dag_api import DAGApi
from airflow_client.client.api.dag_run_api import DagRunApi
from airflow_client.client.models.dag_patch_body import DAGPatchBody
from airflow_client.client.models.trigger_dag_run_post_body import TriggerDAGRunPostBody
from airflow_client.client.rest import ApiException

from bench.errors import BenchError


def access_token(base_url: str, username: str, password: str, timeout: float = 120) -> str:
    """A JWT for the user; retried for a while, since a just-healthy api-server may still warm up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = requests.post(
                f"{base_url}/auth/token", json={"username": username, "password": password}, timeout=30
            )
            response.raise_for_status()
            return str(response.json()["access_token"])
        except (requests.RequestException, KeyError, ValueError) as error:
            if time.monotonic() > deadline:
                raise BenchError(f"no API token from {base_url}/auth/token: {error}") from error
            time.sleep(3)


class AirflowApi:
    def __init__(self, base_url: str, username: str, password: str) -> None:
        config = af.Configuration(host=base_url, access_token=access_token(base_url, username, password))
        client = af.ApiClient(config)
        self.dags = DAGApi(client)
        self.runs = DagRunApi(client)

    def wait_for_dag(self, dag_id: str, timeout: float = 300) -> float:
        """Wait until the dag-processor has parsed the DAG; the seconds it took."""
        started = time.monotonic()
        while True:
            try:
                self.dags.get_dag(dag_id)
                return time.monotonic() - started
            except ApiException as error:
                if error.status != 404:
                    raise BenchError(f"GET dag {dag_id}: HTTP {error.status} {error.reason}") from error
            if time.monotonic() - started > timeout:
                raise BenchError(f"DAG {dag_id} not parsed after {timeout:.0f} s (bench/dags mounted?)")
            time.sleep(2)

    def unpause(self, dag_id: str) -> None:
        self.dags.patch_dag(dag_id, DAGPatchBody(is_paused=False))

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, object]) -> None:
        try:
            self.runs.trigger_dag_run(
                dag_id, TriggerDAGRunPostBody(dag_run_id=run_id, logical_date=None, conf=conf)
            )
        except ApiException as error:
            raise BenchError(f"trigger {dag_id}: HTTP {error.status} {error.body}") from error
