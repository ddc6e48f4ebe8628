"""The repository holds no secret: detect-secrets (all its default detectors) over every file git tracks.

A value that only looks like a secret (a test fixture's key) is marked on its line with
`# pragma: allowlist secret`, so each exception is visible where it is made.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from detect_secrets.core.secrets_collection import SecretsCollection
from detect_secrets.settings import default_settings

from tests.reliability.report import record

ROOT = Path(__file__).resolve().parents[2]


def repository_files() -> list[str]:
    """Tracked files plus new ones not ignored (what the next commit could add)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    return [name for name in listed if (ROOT / name).is_file()]


def scan(root: Path, files: list[str]) -> dict[str, list[dict[str, object]]]:
    secrets = SecretsCollection(root=str(root))
    with default_settings():
        secrets.scan_files(*files, num_processors=1)
    found: dict[str, list[dict[str, object]]] = secrets.json()
    return found


def test_the_scanner_finds_planted_secrets(tmp_path: Path) -> None:
    aws_key = "AKIA" + "QX7RM2PL9D4TWZ3K"  # split so this file does not hold it
    (tmp_path / "settings.py").write_text(
        f'AWS_ACCESS_KEY_ID = "{aws_key}"\npassword = "{"hunter" + "2-x9!"}"\n'
    )
    found = scan(tmp_path, ["settings.py"])
    kinds = {finding["type"] for finding in found["settings.py"]}
    assert {"AWS Access Key", "Secret Keyword"} <= kinds


def test_the_repository_holds_no_secret() -> None:
    files = repository_files()
    found = scan(ROOT, files)
    record("secrets_scan", files=len(files), findings=sum(len(items) for items in found.values()))
    assert len(files) > 20
    assert found == {}, {name: [item["type"] for item in items] for name, items in found.items()}
