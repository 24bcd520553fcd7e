"""`docker compose` command lines for one project, the environment they run in, and running them.

Not testcontainers' DockerCompose (which the tests used before): it runs compose in the caller's
environment, where a variable of the user's shell (a password, a port, COMPOSE_PROJECT_NAME) would beat
the test's env file and could point the tests at the user's own stack; `environment` below prevents that.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from stackkit import REPO
from stackkit.errors import StackError


def command(project: str, files: Sequence[Path], env_file: Path, *args: str) -> list[str]:
    """docker compose on PROJECT, named explicitly, with FILES in order and ENV_FILE, then ARGS."""
    line = ["docker", "compose", "--project-name", project, "--project-directory", str(REPO)]
    for path in files:
        line += ["--file", str(path)]
    return [*line, "--env-file", str(env_file), *args]


def environment(
    caller: Mapping[str, str], env_file_values: Mapping[str, str], images: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment docker compose runs in.

    A variable of the caller's shell beats the env file in compose, so every variable the env file
    sets (secrets, ports, profiles) is dropped from it, and so are COMPOSE_* (the Makefile exports
    COMPOSE_PROJECT_NAME=airflow: the project name is passed on the command line instead). Image
    variables stay: that is how OFFLINE=1 and registry mirrors reach compose. IMAGES fill in the
    offline kit's images the caller did not export (stackkit.images.offline_images).
    """
    found = {
        key: value
        for key, value in caller.items()
        if not key.startswith("COMPOSE_") and key not in env_file_values
    }
    for key, value in (images or {}).items():
        found.setdefault(key, value)
    return found


def run(
    base: Sequence[str],
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float | None = 900,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run `BASE ARGS` (BASE: docker compose and its global options, as command() makes them) in the
    checkout. ENV None: the caller's environment. CHECK: a non-zero exit raises StackError with the
    last lines of the output; a timeout always does."""
    what = f"docker compose {' '.join(args)}"
    try:
        result = subprocess.run(
            [*base, *args],
            cwd=REPO,
            env=None if env is None else dict(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise StackError(f"{what} did not finish in {timeout:.0f} s") from error
    if check and result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
        raise StackError(f"{what} failed (exit {result.returncode}):\n{tail}")
    return result
