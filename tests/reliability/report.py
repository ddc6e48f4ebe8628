"""The figures the reliability tests measured: printed (visible with `pytest -s`) and kept in a JSON file.

`test-artifacts/reliability.json` (git-ignored) holds the last figures of every test, keyed by test name, so
the README's Reliability section can quote one run of the whole suite.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

ARTIFACT = Path(__file__).resolve().parents[2] / "test-artifacts" / "reliability.json"


def record(test: str, **figures: object) -> None:
    """Print `figures` and merge them into the JSON summary under `test`."""
    shown = {name: _rounded(value) for name, value in figures.items()}
    print(f"\n[reliability] {test}: " + ", ".join(f"{name}={value}" for name, value in shown.items()))
    ARTIFACT.parent.mkdir(exist_ok=True)
    try:
        summary = json.loads(ARTIFACT.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        summary = {}
    summary[test] = shown
    temporary = ARTIFACT.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    temporary.replace(ARTIFACT)


def _rounded(value: object) -> object:
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 3)
    if isinstance(value, dict):
        return {str(key): _rounded(item) for key, item in value.items()}
    return value
