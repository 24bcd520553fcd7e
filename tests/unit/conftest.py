"""Unit tests import Airflow: point AIRFLOW_HOME at a temporary folder first, so nothing is written
into the repository or the user's home, and no example DAGs are loaded."""

from __future__ import annotations

import os
import tempfile

os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="airflow-unit-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
