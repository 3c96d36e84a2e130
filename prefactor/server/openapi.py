"""The OpenAPI document of the local API, served at ``/openapi.json`` behind the token.

The routes read raw bodies and leave every rule to the store, so FastAPI sees
no request shapes; each route names its wire model from :mod:`prefactor._api.models`
instead (:func:`body`, :func:`query`), and :func:`document` adds those
models' JSON Schemas as components. The document describes requests and the
error envelope; answers are the contract's, documented in ``docs/server.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from prefactor._api.models import ApiError
from prefactor._version import __version__

__all__ = ["body", "document", "otlp_traces", "prefer_header", "query"]

_COMPONENTS = "#/components/schemas/"
_ERROR = {
    "description": "The error envelope",
    "content": {"application/json": {"schema": {"$ref": f"{_COMPONENTS}ApiError"}}},
}


def body(model: type[BaseModel]) -> dict[str, Any]:
    """The ``openapi_extra`` of a route whose JSON body is ``model``."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": _COMPONENTS + model.__name__}}},
        }
    }


def prefer_header() -> dict[str, Any]:
    """The ``openapi_extra`` of a route that honours ``Prefer: return=minimal`` (RFC 7240)."""
    return {
        "parameters": [
            {
                "name": "Prefer",
                "in": "header",
                "required": False,
                "description": "return=minimal: successful outputs carry status and control only",
                "schema": {"type": "string"},
            }
        ]
    }


def otlp_traces() -> dict[str, Any]:
    """The ``openapi_extra`` of ``POST /v1/traces``, which answers in OTLP's own terms."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
                "application/json": {"schema": {"type": "object"}},
            },
        },
        "responses": {"4XX": {"description": "An OTLP Status: the body could not be read"}},
    }


def query(*params: tuple[str, str, bool]) -> dict[str, Any]:
    """The ``openapi_extra`` of a route that reads query ``(name, type, required)``."""
    return {
        "parameters": [
            {"name": name, "in": "query", "required": required, "schema": {"type": kind}}
            for name, kind, required in params
        ]
    }


def document(app: FastAPI, models: Sequence[type[BaseModel]]) -> dict[str, Any]:
    """The OpenAPI document of ``app``'s routes, with ``models`` (their bodies) as components."""
    doc = get_openapi(title=app.title, version=__version__, routes=app.routes)
    for item in doc.get("paths", {}).values():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)  # FastAPI's own shape, which these routes never answer
            responses.setdefault("4XX", _ERROR)
    every: dict[type[BaseModel], None] = dict.fromkeys([ApiError, *models])
    _, schemas = models_json_schema(
        [(m, "validation") for m in every], ref_template=_COMPONENTS + "{model}"
    )
    components = doc.setdefault("components", {})
    components["schemas"] = schemas.get("$defs", {})
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    doc["security"] = [{"bearer": []}]
    return doc
