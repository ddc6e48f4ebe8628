"""One typed settings object, read from the environment once at start-up.

The names are the notes' ConfigMap/Secret keys (CLASS_NAMES, MODEL_VERSION, LOG_LEVEL, API_KEY) plus
mlkube's own. An invalid value stops the process with a message naming the variable and the value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from mlkube.errors import ConfigError
from mlkube.model.bundle import SAFE_NAME_PATTERN

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
Runtime = Literal["onnx", "sklearn"]
Positive = Annotated[int, msgspec.Meta(ge=1)]
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Seconds = Annotated[float, msgspec.Meta(ge=0)]
SafeName = Annotated[str, msgspec.Meta(pattern=SAFE_NAME_PATTERN)]
Sha256 = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]

MIN_KEY_LENGTH = 16
MAX_KEY_FILE_BYTES = 64 * 1024
_LIST_FIELDS = ("CLASS_NAMES", "API_KEY")
_SECRET_FIELDS = ("API_KEY",)
_NEW_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
_PATTERN_HINTS = {
    "MODEL_NAME": "a folder name under MODEL_DIR: letters, digits, '.', '_' or '-' (at most 63, no '/')",
    "MODEL_SHA256": "64 hexadecimal digits, the digest `mlkube models show` prints",
}


class Settings(msgspec.Struct, frozen=True, rename="upper", kw_only=True):
    """Everything the server reads from its environment. Field names map to upper-case variables."""

    model_dir: Path = Path("models")
    """Root folder of model bundles (`<MODEL_DIR>/<name>/<version>/`)."""
    model_name: SafeName = "iris"
    """Which model under MODEL_DIR to serve (a folder name, no separators); its newest `v<N>` version."""
    model_bundle: Path | None = None
    """Exact bundle folder to serve; overrides MODEL_DIR/MODEL_NAME."""
    model_version: str | None = None
    """Version reported in every answer; default: the bundle's own version."""
    model_sha256: Sha256 | None = None
    """Pinned bundle digest (`mlkube models show` prints it): sha256 of metadata.json; others are refused."""
    model_runtime: Runtime = "onnx"
    """`onnx` (default, no scikit-learn needed) or `sklearn` (needs the training extras)."""
    class_names: tuple[str, ...] | None = None
    """Comma-separated display names for the classes; must match the model's class count."""
    log_level: LogLevel = "INFO"
    """Threshold of the JSON log lines."""
    api_key: tuple[str, ...] = ()
    """Comma-separated keys; when set, every prediction route needs one. Several keys allow rotation."""
    api_key_file: Path | None = None
    """File holding the key(s), comma- or newline-separated (a mounted Secret); added to API_KEY."""
    host: str = "127.0.0.1"
    """Address to listen on."""
    port: Port = 5000
    """Port to listen on."""
    workers: Positive | None = None
    """Worker processes; default: the CPU quota of the cgroup (a pod's CPU limit), else the core count."""
    max_batch_size: Positive = 1000
    """Most rows accepted in one request."""
    micro_batch_rows: Positive = 64
    """Most rows scored in one model call when concurrent requests are joined; 1 scores each on its own."""
    max_body_bytes: Positive = 1_048_576
    """Largest request body accepted, in bytes."""
    max_in_flight: Positive = 256
    """Requests one worker handles at once before answering 503 with Retry-After."""
    drain_seconds: Seconds = 3.0
    """After SIGTERM: how long /ready says 503 while traffic is still served, so load balancers let go."""
    grace_seconds: Seconds = 20.0
    """After draining: how long requests in flight may take to finish before workers are killed."""

    def __repr__(self) -> str:
        # Keys must never reach a log line, an error or a traceback.
        shown = {f: getattr(self, f) for f in self.__struct_fields__ if f not in ("api_key",)}
        return f"Settings({shown}, api_key=<{len(self.api_key)} hidden>)"

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_key)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the settings from `environ` (default: the process environment)."""
    env = os.environ if environ is None else environ
    raw = _raw_values(env)
    try:
        settings = msgspec.convert(raw, Settings, strict=False, dec_hook=_decode_path)
    except msgspec.ValidationError as error:
        raise ConfigError(_explain(error, raw)) from None
    if "API_KEY" in raw and not settings.api_key:
        raise ConfigError(
            "invalid API_KEY=<hidden>: it is set but holds no key; set at least one key, or unset API_KEY "
            "to serve without authentication"
        )
    _check_key_lengths("API_KEY=<hidden>", settings.api_key)
    return _with_key_file(settings)


def _raw_values(env: Mapping[str, str]) -> dict[str, object]:
    names = {name.upper() for name in Settings.__struct_fields__}
    raw: dict[str, object] = {}
    for name in names:
        value = env.get(name, "").strip()
        if not value:
            continue
        raw[name] = _split_list(value) if name in _LIST_FIELDS else value
    if isinstance(raw.get("LOG_LEVEL"), str):
        raw["LOG_LEVEL"] = str(raw["LOG_LEVEL"]).upper()
    for name in ("MODEL_RUNTIME", "MODEL_SHA256"):
        if isinstance(raw.get(name), str):
            raw[name] = str(raw[name]).lower()
    return raw


def _decode_path(kind: type, value: object) -> object:
    if kind is Path and isinstance(value, str):
        return Path(value)
    raise NotImplementedError


def _split_list(value: str) -> list[str]:
    return [item.strip() for item in re.split(r"[,\n]", value) if item.strip()]


def _explain(error: msgspec.ValidationError, raw: Mapping[str, object]) -> str:
    match = re.search(r"at `\$\.([A-Z0-9_]+)", str(error))
    if not match:
        return f"invalid configuration: {error}"
    name = match.group(1)
    reason = str(error).split(" - at ")[0].replace("`", "")
    if "matching regex" in reason and name in _PATTERN_HINTS:
        reason = f"expected {_PATTERN_HINTS[name]}"
    shown = "<hidden>" if name in _SECRET_FIELDS else repr(raw.get(name))
    return f"invalid {name}={shown}: {reason}"


def _with_key_file(settings: Settings) -> Settings:
    if settings.api_key_file is None:
        return settings
    return msgspec.structs.replace(settings, api_key=settings.api_key + read_key_file(settings.api_key_file))


def read_key_file(path: Path) -> tuple[str, ...]:
    """The keys in API_KEY_FILE, under API_KEY's rules (at least one, each of MIN_KEY_LENGTH or more).

    Read at start-up and again whenever the file changes (server/auth.py); the errors never name a key.
    """
    try:
        with path.open("rb") as file:
            data = file.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as error:
        raise ConfigError(f"invalid API_KEY_FILE={str(path)!r}: {error.strerror}") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise ConfigError(f"invalid API_KEY_FILE={str(path)!r}: over {MAX_KEY_FILE_BYTES} bytes")
    keys = tuple(_split_list(data.decode("utf-8", errors="replace")))
    if not keys:
        raise ConfigError(f"invalid API_KEY_FILE={str(path)!r}: the file holds no key")
    _check_key_lengths(f"API_KEY_FILE={str(path)!r}", keys)
    return keys


def _check_key_lengths(source: str, keys: tuple[str, ...]) -> None:
    """A short key can be guessed: refuse it, naming its position and length, never the key."""
    for position, key in enumerate(keys, start=1):
        if len(key) < MIN_KEY_LENGTH:
            raise ConfigError(
                f"invalid {source}: key {position} of {len(keys)} has {len(key)} characters, fewer than "
                f"{MIN_KEY_LENGTH}; make one with {_NEW_KEY}"
            )
