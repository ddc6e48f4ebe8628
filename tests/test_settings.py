"""Settings: read once, typed, and an invalid value names the variable and the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlkube.errors import ConfigError
from mlkube.settings import Settings, load_settings


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
            "API_KEY": "k1,k2",  # pragma: allowlist secret
        }
    )
    assert settings.class_names == ("setosa", "versicolor", "virginica")
    assert settings.model_version == "v2"
    assert settings.log_level == "DEBUG"
    assert settings.api_key == ("k1", "k2")


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
    key_file.write_text("from-file-1\nfrom-file-2\n")
    settings = load_settings({"API_KEY": "inline", "API_KEY_FILE": str(key_file)})
    assert settings.api_key == ("inline", "from-file-1", "from-file-2")


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
