"""Shared code for the example DAGs in dags/: alert callbacks, a deferrable Postgres row sensor and its
trigger, demo-database helpers, and the DAG factory's config loader.

Importable as `stack_patterns` in every Airflow container (scheduler, dag-processor, triggerer,
workers), because Airflow puts plugins/ on sys.path. It is a plain package, not an AirflowPlugin:
DAG files import the callbacks and the sensor, and the triggerer imports the trigger by the classpath
its serialize() returns, so nothing here has to be registered with the plugin manager.
Submodules are imported on demand: this file imports nothing, so DAG parsing stays cheap.
"""
