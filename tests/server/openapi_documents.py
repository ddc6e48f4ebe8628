"""Reading the server's OpenAPI document in tests: the JSON media type and a validator for a request body."""

from __future__ import annotations

from typing import Any

from openapi_schema_validator import OAS31Validator

JSON = "application/json"


def request_validator(document: dict[str, Any], method: str, path: str) -> OAS31Validator:
    """A JSON Schema validator for the JSON body `method path` takes, with the document's components."""
    schema = document["paths"][path][method.lower()]["requestBody"]["content"][JSON]["schema"]
    return OAS31Validator({**schema, "components": document["components"]})
