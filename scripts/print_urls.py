"""Print where the stack's UIs are and where their credentials live. Run at the end of `make up`."""

from __future__ import annotations

import subprocess
from pathlib import Path

UIS = [
    ("Airflow", "airflow-apiserver", 8080, "AIRFLOW_ADMIN_USER", "AIRFLOW_ADMIN_PASSWORD"),
    ("Flower", "flower", 5555, "FLOWER_USER", "FLOWER_PASSWORD"),
    ("Grafana", "grafana", 3000, "GRAFANA_ADMIN_USER", "GRAFANA_ADMIN_PASSWORD"),
]


def published(service: str, port: int) -> str | None:
    result = subprocess.run(
        ["docker", "compose", "port", service, str(port)], capture_output=True, text=True, check=False
    )
    address = result.stdout.strip()
    return address if result.returncode == 0 and address else None


def env_value(key: str) -> str:
    for line in Path(".env").read_text().splitlines():
        if line.startswith(f"{key}="):
            return line.split("=", 1)[1]
    return "(default)"


def main() -> None:
    print("\nThe stack is up and healthy:")
    for title, service, port, user_key, password_key in UIS:
        address = published(service, port)
        if address is None:
            print(f"  {title:8} not running (off in COMPOSE_PROFILES, or no image for it on this machine)")
            continue
        print(f"  {title:8} http://{address}   user {env_value(user_key)}, password: {password_key} in .env")
    print("Scale workers with `make scale N=3`; stop with `make down`.")


if __name__ == "__main__":
    main()
