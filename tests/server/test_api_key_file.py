"""`ApiKeys` and API_KEY_FILE in process: API_KEY's keys apart from the file's, a reload, a bad reload."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mlkube.errors import ConfigError, InferenceError, Unauthorized
from mlkube.server.auth import ApiKeys
from mlkube.server.tensors.binary import header_length
from mlkube.settings import load_settings

FIXED = "fixed-key-from-the-environment"
OLD = "old-key-from-the-mounted-file"
NEW = "new-key-from-the-mounted-file"


def scheduled_never(seconds: float, callback: object) -> None:
    """A `call_later` that never calls back: the test reloads by hand."""


def test_the_fixed_keys_stay_and_the_file_keys_follow_the_file(tmp_path: Path) -> None:
    key_file = tmp_path / "API_KEY"
    key_file.write_text(OLD)
    keys = ApiKeys.from_settings(load_settings({"API_KEY": FIXED, "API_KEY_FILE": str(key_file)}))
    keys.attach(scheduled_never)
    assert keys.count == 2
    key_file.write_text(f"{NEW}\n")
    keys.reload()
    keys.check({"x-api-key": FIXED})
    keys.check({"x-api-key": NEW})
    with pytest.raises(Unauthorized):
        keys.check({"x-api-key": OLD})


@pytest.mark.parametrize("content", ["", " ,\n", "too-short", "x" * 70_000])
def test_a_bad_reload_keeps_the_keys_and_warns_without_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str
) -> None:
    key_file = tmp_path / "API_KEY"
    key_file.write_text(OLD)
    keys = ApiKeys((), key_file)
    key_file.write_text(content)
    with caplog.at_level(logging.WARNING, logger="mlkube.server"):
        keys.reload()
    keys.check({"x-api-key": OLD})
    assert "API keys not reloaded" in caplog.text
    assert OLD not in caplog.text
    assert not content.strip(" ,\n") or content[:40] not in caplog.text


def test_a_file_gone_keeps_the_keys(tmp_path: Path) -> None:
    key_file = tmp_path / "API_KEY"
    key_file.write_text(OLD)
    keys = ApiKeys((), key_file)
    key_file.unlink()
    keys.reload()
    keys.check({"x-api-key": OLD})


def test_a_file_changed_while_starting_stops_the_server(tmp_path: Path) -> None:
    key_file = tmp_path / "API_KEY"
    key_file.write_text(OLD)
    settings = load_settings({"API_KEY_FILE": str(key_file)})
    key_file.write_text(f"{OLD}\n{NEW}")
    with pytest.raises(ConfigError, match="changed while the server started"):
        ApiKeys.from_settings(settings)


@pytest.mark.parametrize("value", ["9" * 5000, "\u00b2", "1" * 19, "-1", "4 "])
def test_inference_header_lengths_that_are_no_length_are_400(value: str) -> None:
    with pytest.raises(InferenceError, match="is not a length within the body"):
        header_length(value, 10**30)
