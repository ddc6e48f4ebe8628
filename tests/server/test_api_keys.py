"""`ApiKeys` in process: which headers pass, and what a refusal says (never the key)."""

from __future__ import annotations

import pytest

from mlkube.errors import Unauthorized
from mlkube.server.auth import ApiKeys

OLD, NEW = "old-key-1234", "new-key-5678"


@pytest.mark.parametrize(
    "headers",
    [
        {"x-api-key": OLD},
        {"x-api-key": NEW},
        {"authorization": f"Bearer {NEW}"},
        {"authorization": f"bearer   {OLD}  "},
    ],
)
def test_either_key_of_a_rotation_passes_in_either_header(headers: dict[str, str]) -> None:
    ApiKeys([OLD, NEW]).check(headers)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing API key"),
        ({"authorization": f"Basic {OLD}"}, "missing API key"),
        ({"authorization": "Bearer "}, "missing API key"),
        ({"x-api-key": "guess"}, "invalid API key"),
        ({"x-api-key": OLD[:-1]}, "invalid API key"),
    ],
)
def test_anything_else_is_unauthorized_without_echoing_a_key(headers: dict[str, str], message: str) -> None:
    with pytest.raises(Unauthorized, match=message) as raised:
        ApiKeys([OLD, NEW]).check(headers)
    assert OLD not in str(raised.value)
    assert NEW not in str(raised.value)
    assert dict(raised.value.headers) == {"www-authenticate": 'Bearer realm="mlkube"'}


def test_without_keys_every_request_passes() -> None:
    ApiKeys([]).check({})
