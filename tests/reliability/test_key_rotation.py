"""Rotating a mounted API-key Secret needs no restart (issue 13 #13).

The kubelet updates a Secret mounted as a volume in place: it writes the new files into a new hidden folder
and swaps the `..data` link to it, and `API_KEY` itself is a link through `..data`. This test lays the
folder out the same way, swaps it while two workers serve, and checks that within a few seconds the old
key is refused and the new one accepted on every worker; then that a swap to a file that breaks the key
rules (a short key) keeps the previous keys and logs a warning that never shows a key.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.reliability.report import record
from tests.support import NOTES_ROW, RunningServer, start_server

OLD_KEY = "old-api-key-for-the-rotation-test"
NEW_KEY = "new-api-key-for-the-rotation-test"
SHORT_KEY = "short-key"
WITHIN_SECONDS = 5.0
CONSECUTIVE = 20  # with two workers, each request may go to either: all of them must agree


def mount_secret(folder: Path, key: str, generation: int) -> None:
    """Write the key as the kubelet does: a new `..<timestamp>` folder, then an atomic swap of `..data`."""
    data = folder / f"..2026_12_01_00_00_0{generation}"
    data.mkdir()
    (data / "API_KEY").write_text(key + "\n")
    staged = folder / "..data_tmp"
    staged.symlink_to(data.name)
    staged.replace(folder / "..data")
    if not (folder / "API_KEY").is_symlink():
        (folder / "API_KEY").symlink_to("..data/API_KEY")


def status_with(server: RunningServer, key: str) -> int:
    response = server.client.post("/predict", json={"features": NOTES_ROW}, headers={"X-API-Key": key})
    return response.status_code


def settles(check: Callable[[], bool], timeout: float) -> float | None:
    """Seconds until `check` held CONSECUTIVE times in a row, or None if it did not within `timeout`."""
    started = time.monotonic()
    streak = 0
    while time.monotonic() - started < timeout:
        streak = streak + 1 if check() else 0
        if streak >= CONSECUTIVE:
            return time.monotonic() - started
        time.sleep(0.02)
    return None


def test_a_swapped_secret_is_used_within_seconds_and_a_bad_one_is_not(
    model_dir: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    mount_secret(secret, OLD_KEY, 1)
    environment = {"MODEL_DIR": str(model_dir), "WORKERS": "2", "API_KEY_FILE": str(secret / "API_KEY")}
    with start_server(environment) as server:
        assert status_with(server, OLD_KEY) == 200
        assert status_with(server, NEW_KEY) == 401

        mount_secret(secret, NEW_KEY, 2)
        rotated = settles(
            lambda: status_with(server, NEW_KEY) == 200 and status_with(server, OLD_KEY) == 401, 10
        )
        assert rotated is not None
        assert rotated < WITHIN_SECONDS

        mount_secret(secret, SHORT_KEY, 3)
        warnings = server.wait_for_log("API keys not reloaded", timeout=WITHIN_SECONDS)
        assert len(warnings) >= 1
        assert status_with(server, NEW_KEY) == 200
        assert status_with(server, SHORT_KEY) == 401
        for line in server.log_lines():
            assert not [key for key in (OLD_KEY, NEW_KEY, SHORT_KEY) if key in line]

        (secret / "..data").unlink()  # the file gone: the keys stay as they were
        time.sleep(1.5)
        assert status_with(server, NEW_KEY) == 200
    record("key_rotation", seconds_to_rotate=rotated, workers=2)
