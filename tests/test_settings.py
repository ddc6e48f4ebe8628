"""Settings: read once, typed, and an invalid value names the variable and the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlkube.errors import ConfigError
from mlkube.settings import MIN_KEY_LENGTH, Settings, load_settings

KEY_1 = "first-key-0123456789"
KEY_2 = "second-key-0123456789"


def test_defaults_match_the_notes() -> None:
    settings = load_settings({})
    assert (settings.host, settings.port, settings.log_level) == ("127.0.0.1", 5000, "INFO")
    assert settings.model_dir == Path("models")
    assert settings.api_key == ()
    assert not settings.auth_enabled


def test_notes_configmap_and_secret_keys_are_read() -> None:
    settings = load_settings(
        {
            "CLASS_NAMES": "setosa, versicolor,virginica",
            "MODEL_VERSION": "v2",
            "LOG_LEVEL": "debug",
            "API_KEY": f"{KEY_1},{KEY_2}",
        }
    )
    assert settings.class_names == ("setosa", "versicolor", "virginica")
    assert settings.model_version == "v2"
    assert settings.log_level == "DEBUG"
    assert settings.api_key == (KEY_1, KEY_2)


def test_numbers_are_parsed_and_checked() -> None:
    settings = load_settings(
        {"PORT": "8080", "WORKERS": "3", "DRAIN_SECONDS": "0.5", "MAX_BODY_BYTES": "2048"}
    )
    assert (settings.port, settings.workers, settings.drain_seconds, settings.max_body_bytes) == (
        8080,
        3,
        0.5,
        2048,
    )


def test_key_file_keys_are_added_to_api_key(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("from-file-1-0123456789\nfrom-file-2-0123456789\n")
    settings = load_settings({"API_KEY": KEY_1, "API_KEY_FILE": str(key_file)})
    assert settings.api_key == (KEY_1, "from-file-1-0123456789", "from-file-2-0123456789")


def test_empty_key_file_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("\n")
    with pytest.raises(ConfigError, match="the file holds no key"):
        load_settings({"API_KEY_FILE": str(key_file)})


def test_keys_are_hidden_from_repr() -> None:
    settings = load_settings({"API_KEY": "super-secret-value"})
    assert "super-secret-value" not in repr(settings)
    assert "<1 hidden>" in repr(settings)


def test_every_field_is_documented() -> None:
    """Each field is followed by a docstring of its own (the attribute docstring tools show)."""
    import ast
    import inspect
    import textwrap

    [class_node] = ast.parse(textwrap.dedent(inspect.getsource(Settings))).body
    assert isinstance(class_node, ast.ClassDef)
    documented: dict[str, object] = {}
    for statement, following in zip(class_node.body, class_node.body[1:], strict=False):
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            docstring = None
            if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
                docstring = following.value.value
            documented[statement.target.id] = docstring
    assert set(documented) == set(Settings.__struct_fields__)
    undocumented = [name for name, doc in documented.items() if not (isinstance(doc, str) and doc.strip())]
    assert undocumented == []


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "abc"}, "invalid PORT='abc': Expected int, got str"),
        ({"WORKERS": "-1"}, "invalid WORKERS='-1': Expected int >= 1"),
        ({"MODEL_RUNTIME": "torch"}, "invalid MODEL_RUNTIME='torch'"),
        ({"DRAIN_SECONDS": "soon"}, "invalid DRAIN_SECONDS='soon'"),
    ],
)
def test_invalid_values_name_variable_and_value(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert message in str(caught.value)


def test_readme_configuration_table_lists_every_variable() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for name in Settings.__struct_fields__:
        assert f"| `{name.upper()}` |" in readme, name


@pytest.mark.parametrize("value", [",", " , ,", ",\n,"])
def test_a_set_api_key_that_holds_no_key_stops_the_server(value: str) -> None:
    """`API_KEY=","` used to turn authentication off without a word."""
    with pytest.raises(ConfigError, match="it is set but holds no key") as caught:
        load_settings({"API_KEY": value})
    assert "unset API_KEY to serve without authentication" in str(caught.value)


def test_a_short_key_is_refused_without_showing_it(tmp_path: Path) -> None:
    short = "change-me"
    with pytest.raises(ConfigError) as caught:
        load_settings({"API_KEY": f"{KEY_1},{short}"})
    message = str(caught.value)
    assert f"key 2 of 2 has {len(short)} characters, fewer than {MIN_KEY_LENGTH}" in message
    assert short not in message
    key_file = tmp_path / "key"
    key_file.write_text(f"{short}\n")
    with pytest.raises(ConfigError, match=f"invalid API_KEY_FILE=.*key 1 of 1 has {len(short)} characters"):
        load_settings({"API_KEY_FILE": str(key_file)})


def test_a_key_of_the_minimum_length_is_accepted() -> None:
    key = "k" * MIN_KEY_LENGTH
    assert load_settings({"API_KEY": key}).api_key == (key,)


@pytest.mark.parametrize("name", ["../x/iris", "iris/../../etc", "/abs/iris", ".hidden", "a/b"])
def test_a_model_name_that_is_not_a_folder_name_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match=f"invalid MODEL_NAME={name!r}: expected a folder name"):
        load_settings({"MODEL_NAME": name})


def test_model_sha256_must_be_a_sha256_and_is_read_case_insensitively() -> None:
    digest = "AB" * 32
    assert load_settings({"MODEL_SHA256": digest}).model_sha256 == digest.lower()
    with pytest.raises(ConfigError, match="invalid MODEL_SHA256='abc': expected 64 hexadecimal digits"):
        load_settings({"MODEL_SHA256": "abc"})
