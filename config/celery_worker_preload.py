"""Modules every task would otherwise import again: `airflow celery worker` imports this module once in
its main process, before forking its pool (Celery's `imports`, set by [celery] extra_celery_config in
config/airflow.cfg; config/ is on every Airflow process' sys.path). Each task process is forked from a
pool child and inherits them, instead of paying ~0.1 core-second per task to parse its DAG file with a
cold BundleDagBag (docs/performance.md has the before/after). Add a module that your DAG files import
at the top and that is slow to import; imports only: no sockets, threads, clients or sessions here,
which a fork would share between processes."""

import airflow.dag_processing.bundles.local  # the DAG bundle every task looks up
import airflow.dag_processing.dagbag  # BundleDagBag: models, serialization, timetables
import airflow.providers.standard.decorators.python  # @task
import airflow.sdk.definitions.decorators
import airflow.sdk.execution_time.supervisor  # noqa: F401  else each pool child imports it on its first task
