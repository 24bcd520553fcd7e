"""The benchmark of the stack: tuned configuration against Airflow's official defaults.

Run it with `make bench` (or `python -m bench --help`); bench/README.md says what it measures.
"""
