"""Which images a stack runs: the offline kit's stand-ins (OFFLINE=1), and what a resolved compose
file names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from stackkit import REPO, envfile

OFFLINE_IMAGES_FILE = REPO / "offline" / "images.env"


def offline_images(caller: Mapping[str, str], offline: bool) -> dict[str, str]:
    """The offline kit's image variables when OFFLINE (or OFFLINE=1 in CALLER), else none."""
    if not (offline or caller.get("OFFLINE") == "1"):
        return {}
    return envfile.read(OFFLINE_IMAGES_FILE)


@dataclass(frozen=True)
class ServiceImage:
    service: str
    image: str
    built: bool  # built from ./Dockerfile (compose build), not pulled


def service_images(resolved: Mapping[str, object]) -> list[ServiceImage]:
    """Images of a resolved compose file (`docker compose config --format json`)."""
    services = resolved.get("services") or {}
    assert isinstance(services, Mapping)
    return sorted(
        (ServiceImage(name, str(spec.get("image", "")), "build" in spec) for name, spec in services.items()),
        key=lambda item: item.service,
    )
