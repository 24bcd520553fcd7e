#!/usr/bin/env python3
"""Writes the provisioned Grafana dashboards (grafana/dashboards/<folder>/<uid>.json) from the Python in
grafana/dashboards_src/, one module per dashboard. Edit the Python, never the JSON, then run:

    python grafana/generate.py            write every dashboard and delete JSON no dashboard produces
    python grafana/generate.py --check    write nothing; exit 1 naming each file that differs

tests/unit/test_dashboards_generated.py runs the check, so committed JSON cannot drift from the code.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dashboards_src import dashboards

OUTPUT = Path(__file__).resolve().parent / "dashboards"


def rendered() -> dict[str, str]:
    """Relative path -> file text: sorted keys, 2-space indent, trailing newline."""
    result: dict[str, str] = {}
    for dashboard in dashboards():
        if dashboard.path in result:
            raise ValueError(f"two dashboards write {dashboard.path}")
        result[dashboard.path] = (
            json.dumps(dashboard.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        )
    return result


def differences(output: Path, expected: dict[str, str]) -> list[str]:
    """Files that are missing, different or stale (JSON no dashboard produces), as relative paths."""
    present = {path.relative_to(output).as_posix() for path in output.rglob("*.json")}
    problems = [f"{path}: stale, no dashboard produces it" for path in sorted(present - expected.keys())]
    for path, text in sorted(expected.items()):
        if path not in present:
            problems.append(f"{path}: missing")
        elif (output / path).read_text(encoding="utf-8") != text:
            problems.append(f"{path}: differs from the generator's output")
    return problems


def write(output: Path, expected: dict[str, str]) -> None:
    for path in output.rglob("*.json"):
        if path.relative_to(output).as_posix() not in expected:
            path.unlink()
    for folder in sorted((p for p in output.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    for path, text in expected.items():
        target = output / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if anything differs")
    parser.add_argument("--output-dir", type=Path, default=OUTPUT, help="default: grafana/dashboards")
    args = parser.parse_args(argv)
    expected = rendered()
    if args.check:
        problems = differences(args.output_dir, expected)
        for problem in problems:
            print(f"{args.output_dir / problem}", file=sys.stderr)
        if problems:
            print("dashboards are out of date: run `python grafana/generate.py`", file=sys.stderr)
        return 1 if problems else 0
    write(args.output_dir, expected)
    print(f"wrote {len(expected)} dashboards under {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
