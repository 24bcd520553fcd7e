"""plugins/stack_patterns is a typed, importable package: what the containers import from plugins/."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from tests.unit.example_support import PLUGINS

MODULES = ["alerts", "dag_factory", "demo_db", "paths", "sensors", "triggers", "worker_address"]


def test_is_typed() -> None:
    assert (PLUGINS / "stack_patterns" / "py.typed").is_file()
    assert sorted(p.stem for p in (PLUGINS / "stack_patterns").glob("*.py")) == sorted(["__init__", *MODULES])


@pytest.mark.parametrize("module", MODULES)
def test_module_imports(module: str) -> None:
    importlib.import_module(f"stack_patterns.{module}")


def test_package_import_is_free() -> None:
    """`import stack_patterns` loads no submodule and no Airflow: DAG files pay only for what they use."""
    code = (
        "import sys, stack_patterns\n"
        "print(sorted(m for m in sys.modules if m.startswith(('airflow', 'stack_patterns'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PLUGINS, capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "['stack_patterns']"
