"""stack_patterns.triggers and .sensors: the trigger survives the trip through the metadata database
(serialize, then rebuilt from classpath + kwargs), runs to an event without a database to talk to, and
the sensor defers to it at once and turns its events into the task's outcome."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from datetime import timedelta
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout, TaskDeferred
from airflow.sdk.module_loading import import_string
from stack_patterns.sensors import DEFERRAL_GRACE_SECONDS, PostgresRowSensor
from stack_patterns.triggers import PostgresRowTrigger

from tests.unit.example_support import load_dag, runtime_ti

KWARGS: dict[str, Any] = {
    "conn_id": "demo_db",
    "table": "demo.signals",
    "column": "name",
    "value": "go",
    "deadline": 1_780_000_000.5,
    "poll_interval": 5.0,
    "connect_timeout": 10,
}


def first_event(trigger: PostgresRowTrigger) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(asyncio.wait_for(run(), timeout=60))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serialize_round_trip() -> None:
    trigger = PostgresRowTrigger(**KWARGS)
    classpath, kwargs = trigger.serialize()
    assert classpath == "stack_patterns.triggers.PostgresRowTrigger"
    assert kwargs == KWARGS
    json.dumps(kwargs)  # plain JSON: nothing Airflow-specific to encode
    rebuilt = import_string(classpath)(**kwargs)
    assert type(rebuilt) is PostgresRowTrigger
    assert rebuilt.serialize() == (classpath, kwargs)
    assert vars(rebuilt) == vars(trigger)


def test_round_trip_through_the_trigger_table_model() -> None:
    from airflow.models.trigger import Trigger

    row = Trigger.from_object(PostgresRowTrigger(**KWARGS))
    rebuilt = import_string(row.classpath)(**row.kwargs)
    assert rebuilt.serialize() == PostgresRowTrigger(**KWARGS).serialize()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"table": "demo.signals; drop table x"}, "table must be"),
        ({"table": "a.b.c"}, "table must be"),
        ({"column": "name = name or"}, "column must be"),
        ({"poll_interval": 0}, "poll_interval must be positive"),
    ],
)
def test_identifiers_are_checked(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PostgresRowTrigger(**{**KWARGS, **change})


def test_unknown_connection_is_an_error_event(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_NO_SUCH_DB", raising=False)
    event = first_event(PostgresRowTrigger(**{**KWARGS, "conn_id": "no_such_db"}))
    assert event["status"] == "error"
    assert "no_such_db" in event["message"]


def test_unreachable_database_is_polled_until_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_DEMO_DB", f"postgresql://demo:secret@127.0.0.1:{free_port()}/demo")
    started = time.monotonic()
    event = first_event(
        PostgresRowTrigger(
            **{**KWARGS, "deadline": time.time() + 1.5, "poll_interval": 0.3, "connect_timeout": 2}
        )
    )
    assert event["status"] == "timeout"
    assert event["polls"] >= 2
    assert (event["table"], event["column"], event["value"]) == ("demo.signals", "name", "go")
    assert time.monotonic() - started < 15


@pytest.fixture
def sensor_dag() -> Any:
    # Function-scoped: rendering templates changes the task in place, as in a task's own process.
    return load_dag("example_deferrable_sensor.py", "example_deferrable_sensor")


def rendered_sensor(dag: Any, conf: dict[str, Any] | None = None) -> tuple[PostgresRowSensor, Any]:
    ti = runtime_ti(dag, "wait_for_signal", conf=conf)
    context = ti.get_template_context()
    ti.task.render_template_fields(context)
    return ti.task, context


def test_sensor_defers_at_once_with_the_trigger(sensor_dag: Any) -> None:
    sensor, context = rendered_sensor(sensor_dag, conf={"signal_name": "release", "timeout_seconds": 30})
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context)
    trigger = deferred.value.trigger
    assert isinstance(trigger, PostgresRowTrigger)
    assert (trigger.conn_id, trigger.table, trigger.column, trigger.value) == (
        "demo_db",
        "demo.signals",
        "name",
        "release",
    )
    assert before + 30 <= trigger.deadline <= time.time() + 30
    assert trigger.poll_interval == 5.0
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout == timedelta(seconds=30 + DEFERRAL_GRACE_SECONDS)


def test_sensor_default_timeout_comes_from_the_params(sensor_dag: Any) -> None:
    sensor, _ = rendered_sensor(sensor_dag)
    assert sensor.value == "go"
    assert sensor.effective_timeout() == 600.0


def test_sensor_outcomes(sensor_dag: Any) -> None:
    sensor, context = rendered_sensor(sensor_dag)
    found = {"status": "found", "matched_rows": 1, "polls": 3, "table": "demo.signals"}
    assert sensor.execute_complete(context, found) == found
    with pytest.raises(AirflowSensorTimeout, match=r"no row in demo\.signals where name = 'go' within 600 s"):
        sensor.execute_complete(context, {"status": "timeout", "polls": 120})
    with pytest.raises(AirflowException, match="could not be watched"):
        sensor.execute_complete(context, {"status": "error", "message": "UndefinedTable"})
