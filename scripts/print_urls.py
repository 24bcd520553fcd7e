"""Print where the stack's UIs are and where their credentials live. Run at the end of `make up`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# Run as `python3 scripts/<name>.py` too: the checkout's root, where stackkit is, goes on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from stackkit import envfile

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


def main() -> None:
    env = envfile.read(Path(".env"))
    print("\nThe stack is up and healthy:")
    for title, service, port, user_key, password_key in UIS:
        address = published(service, port)
        if address is None:
            print(f"  {title:8} not running (off in COMPOSE_PROFILES, or no image for it on this machine)")
            continue
        user = env.get(user_key, "(default)")
        print(f"  {title:8} http://{address}   user {user}, password: {password_key} in .env")
    print("Scale workers with `make scale N=3`; stop with `make down`.")


if __name__ == "__main__":
    main()
