"""Create .env from .env.example, filling every empty secret with a strong random value.

A secret is a variable whose name ends in PASSWORD, KEY or SECRET; other empty variables (an
optional webhook URL, say) stay empty.

Run by `make env` (and so by `make up`). Never overwrites an existing .env: secrets in use must not
change under a running database. The file is created with mode 600.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import secrets
import sys
from pathlib import Path

ASSIGNMENT = re.compile(r"^(?P<key>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")
SECRET_SUFFIXES = ("PASSWORD", "KEY", "SECRET")


def fernet_key() -> str:
    # The Fernet spec's key: 32 random bytes, url-safe base64 (what Fernet.generate_key() returns).
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def secret_for(key: str) -> str:
    if key.endswith("FERNET_KEY"):
        return fernet_key()
    if key.endswith("JWT_SECRET"):
        return secrets.token_urlsafe(64)  # 86 characters: HS512 wants at least 64 bytes
    return secrets.token_urlsafe(32)


def render(example: str) -> str:
    lines = []
    for line in example.splitlines():
        match = ASSIGNMENT.match(line)
        if match and match["key"].endswith(SECRET_SUFFIXES) and match["value"].strip() == "":
            line = f"{match['key']}={secret_for(match['key'])}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--example", type=Path, default=Path(".env.example"))
    parser.add_argument("--output", type=Path, default=Path(".env"))
    args = parser.parse_args()
    if args.output.exists():
        print(f"{args.output} exists: kept as it is (delete it to generate new secrets).")
        return 0
    content = render(args.example.read_text())
    fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(content)
    print(f"{args.output} created with new random secrets (mode 600).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
