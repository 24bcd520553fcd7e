"""Record in .env what plain `docker compose ...` needs to act like make: the project name and the images.

Run by `make up` (and `make image`): with --offline it writes the offline kit's image names
(offline/images.env) into .env and leaves the `grafana` profile out of COMPOSE_PROFILES when no
Grafana image is present (none can be built offline); without it, image lines an earlier
`make up OFFLINE=1` wrote are commented out again, so the official pins of docker-compose.yml apply.
Lines a user set by hand (another registry, say) are never touched online. Other lines stay as they are.
An .env from before COMPOSE_PROJECT_NAME was in .env.example gets `COMPOSE_PROJECT_NAME=airflow`, the name
make used then, so the running stack keeps its name.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

# Run as `python3 scripts/<name>.py` too: the checkout's root, where stackkit is, goes on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from stackkit import envfile

REPO = Path(__file__).resolve().parents[1]
OFFLINE_IMAGES = REPO / "offline" / "images.env"
DEFAULT_PROJECT = "airflow"
ASSIGNMENT = re.compile(r"^(?P<comment>#?)(?P<key>[A-Z][A-Z0-9_]*)=(?P<value>\S*)")


def offline_prefix(images: dict[str, str]) -> str:
    """The repository prefix all offline stand-ins share (airflow-stack-offline/)."""
    return next(iter(images.values())).split("/", 1)[0] + "/"


def set_values(text: str, values: dict[str, str]) -> str:
    """Set KEY=value for each key: in place of its line (commented or not), else appended."""
    lines = text.splitlines()
    pending = dict(values)
    for i, line in enumerate(lines):
        match = ASSIGNMENT.match(line)
        if match and match["key"] in pending:
            lines[i] = f"{match['key']}={pending.pop(match['key'])}"
    if pending:
        lines += ["# Set by make (scripts/record_images.py)."]
        lines += [f"{key}={value}" for key, value in pending.items()]
    return "\n".join(lines) + "\n"


def unset_offline(text: str, prefix: str) -> str:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = ASSIGNMENT.match(line)
        if match and not match["comment"] and match["value"].startswith(prefix):
            lines[i] = f"#{match['key']}="
    return "\n".join(lines) + "\n"


def without_profile(profiles: str, name: str) -> str:
    return ",".join(p for p in profiles.split(",") if p.strip() and p.strip() != name)


def grafana_image(env_file: Path) -> str:
    """The Grafana image docker-compose.yml names with this env file (its profile included)."""
    images = subprocess.run(
        ["docker", "compose", "--env-file", str(env_file), "--profile", "grafana", "config", "--images"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return next(image for image in images if "grafana" in image)


def image_present(image: str) -> bool:
    inspect = subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False)
    return inspect.returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env-file", type=Path, default=REPO / ".env")
    parser.add_argument("--offline", action="store_true", help="record the offline kit's images")
    args = parser.parse_args()
    images = envfile.read(OFFLINE_IMAGES)
    text = args.env_file.read_text()
    if "COMPOSE_PROJECT_NAME" not in envfile.parse(text):
        text = set_values(text, {"COMPOSE_PROJECT_NAME": DEFAULT_PROJECT})
    if args.offline:
        text = set_values(text, images)
        args.env_file.write_text(text)
        profiles = envfile.parse(text).get("COMPOSE_PROFILES", "")
        try:
            present = image_present(grafana_image(args.env_file))
        except subprocess.CalledProcessError as error:
            print(f"record_images: docker compose config failed: {error.stderr.strip()}", file=sys.stderr)
            return 1
        if "grafana" in profiles.split(",") and not present:
            print("record_images: no Grafana image here (none can be built offline): profile left out")
            text = set_values(text, {"COMPOSE_PROFILES": without_profile(profiles, "grafana")})
    else:
        text = unset_offline(text, offline_prefix(images))
    args.env_file.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
