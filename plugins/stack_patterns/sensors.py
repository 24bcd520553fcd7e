"""A deferrable sensor: waits for a row in a Postgres table without holding a worker slot.

execute() defers at once to stack_patterns.triggers.PostgresRowTrigger: the task goes to state
`deferred`, its worker slot is freed, and the triggerer polls the table asynchronously. When the trigger
fires, the task resumes on a worker in execute_complete(), which returns the event (pushed as XCom) or
fails: AirflowSensorTimeout after `timeout` seconds (no retry: waiting longer is a new run's job), an
AirflowException for an error event.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout

from stack_patterns.triggers import PostgresRowTrigger, split_table_name

if TYPE_CHECKING:
    from airflow.sdk import Context

# The framework's own deferral timeout fires this long after the trigger's deadline: a safety net for
# a triggerer that is down, never the normal way to time out.
DEFERRAL_GRACE_SECONDS = 60.0


class PostgresRowSensor(BaseSensorOperator):
    """Wait until `table` has a row whose `column` equals `value` (templated).

    `timeout` (seconds) is fixed when the DAG is parsed; `wait_timeout`, templated, overrides it at run
    time (e.g. "{{ params.timeout_seconds }}"), since BaseSensorOperator's timeout is not templated.
    """

    template_fields: Sequence[str] = ("table", "column", "value", "wait_timeout")
    ui_color = "#d6eaf8"

    def __init__(
        self,
        *,
        conn_id: str,
        table: str,
        column: str,
        value: str,
        poke_interval: float = 5.0,
        timeout: float = 600.0,
        wait_timeout: str | float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, timeout=timeout, **kwargs)
        split_table_name(table)
        self.conn_id = conn_id
        self.table = table
        self.column = column
        self.value = value
        self.wait_timeout = wait_timeout

    def effective_timeout(self) -> float:
        """`wait_timeout` once rendered, if set; `timeout` otherwise."""
        if self.wait_timeout is None or str(self.wait_timeout).strip() == "":
            return float(self.timeout)
        timeout = float(self.wait_timeout)
        if timeout <= 0:
            raise ValueError(f"wait_timeout must be positive, got {self.wait_timeout!r}")
        return timeout

    def execute(self, context: Context) -> None:
        timeout = self.effective_timeout()
        self.log.info(
            "deferring: waiting up to %.0f s for a row in %s where %s = %r",
            timeout,
            self.table,
            self.column,
            self.value,
        )
        self.defer(
            trigger=PostgresRowTrigger(
                conn_id=self.conn_id,
                table=self.table,
                column=self.column,
                value=str(self.value),
                deadline=time.time() + timeout,
                poll_interval=self.poke_interval,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=timeout + DEFERRAL_GRACE_SECONDS),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        event = event or {}
        status = event.get("status")
        if status == "found":
            self.log.info("row found after %s poll(s): %s", event.get("polls"), event)
            return event
        if status == "timeout":
            waited = self.effective_timeout()
            raise AirflowSensorTimeout(
                f"no row in {self.table} where {self.column} = {self.value!r} within {waited:.0f} s"
            )
        raise AirflowException(f"{self.table} could not be watched: {event}")
