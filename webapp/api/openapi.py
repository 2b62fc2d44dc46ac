"""The OpenAPI 3.1 document, built from the routes' `@operation` metadata and the Pydantic
schemas that also validate their requests."""
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

from flask import Flask
from pydantic import BaseModel

from webapp.api.schemas import Problem

REF = "#/components/schemas/{model}"
IDEMPOTENCY_KEY = (
    "Any unique string of yours (a UUID): send the request again with the same key and the same body "
    "within 24 hours (after a timeout, a 502) and it is not done twice: the first answer comes back (with "
    "`Idempotent-Replayed: true`); what an interrupted first attempt stored is reused, not stored again. "
    "The same key with another body is a 422; while the first is still being answered, a 409 with Retry-After.")
ERROR_CONTENT = "application/problem+json"

# A response is a model (JSON), None (no body) or a dict of content types (files).
ResponseSpec = Union[type[BaseModel], None, dict[str, Any]]


@dataclass
class Operation:
    summary: str
    tag: str
    responses: dict[int, ResponseSpec]
    query: Optional[type[BaseModel]] = None
    body: Optional[type[BaseModel]] = None
    multipart: Optional[dict[str, Any] | Callable[[Any], dict[str, Any]]] = None  # or made from the app's config
    cookie: Optional[str] = None
    headers: dict[str, str] = field(default_factory=dict)
    public: bool = False
    description: str = ""
    idempotent: bool = False  # takes an Idempotency-Key (webapp/api/replays.py)


def operation(**kwargs) -> Callable:
    """Attach OpenAPI metadata to a view; `build_document` reads it."""
    def decorate(view):
        view.openapi = Operation(**kwargs)
        return view
    return decorate


class _Components:
    def __init__(self):
        self.schemas: dict[str, Any] = {}

    def ref(self, model: type[BaseModel], mode: str = "serialization") -> dict:
        schema = model.model_json_schema(ref_template=REF, mode=mode)
        for name, definition in schema.pop("$defs", {}).items():
            self.schemas.setdefault(name, definition)
        self.schemas.setdefault(model.__name__, schema)
        return {"$ref": REF.format(model=model.__name__)}


def _parameters(op: Operation, components: "_Components") -> list[dict]:
    params = []
    if op.query is not None:
        schema = op.query.model_json_schema(ref_template=REF, mode="validation")
        for definition_name, definition in schema.pop("$defs", {}).items():  # enums: shared schemas
            components.schemas.setdefault(definition_name, definition)
        for name, prop in schema.get("properties", {}).items():
            params.append({
                "name": name, "in": "query", "required": name in schema.get("required", []),
                "description": prop.pop("description", ""), "schema": prop,
            })
    if op.cookie:
        params.append({"name": op.cookie, "in": "cookie", "required": False,
                       "schema": {"type": "string"}, "description": "Refresh token, set by login."})
    for name, description in op.headers.items():
        params.append({"name": name, "in": "header", "required": True,
                       "schema": {"type": "string", "enum": ["XMLHttpRequest"]},
                       "description": description})
    if op.idempotent:
        params.append({"name": "Idempotency-Key", "in": "header", "required": False,
                       "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                       "description": IDEMPOTENCY_KEY})
    return params


def _responses(op: Operation, components: _Components) -> dict:
    responses: dict[str, Any] = {}
    for status, spec in op.responses.items():
        entry: dict[str, Any] = {"description": _STATUS_TEXT.get(status, str(status))}
        if isinstance(spec, dict):
            entry["content"] = spec
        elif spec is not None:
            entry["content"] = {"application/json": {"schema": components.ref(spec)}}
        responses[str(status)] = entry
    responses["default"] = {
        "description": "An error (RFC 9457 problem details)",
        "content": {ERROR_CONTENT: {"schema": components.ref(Problem)}},
    }
    return responses


def _path(rule: str) -> tuple[str, list[dict]]:
    found = re.findall(r"<(?:([^:<>]+):)?([^<>]+)>", rule)
    path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)
    params = [{"name": name, "in": "path", "required": True,
               "schema": {"type": "integer", "minimum": 0} if converter == "int" else {"type": "string"}}
              for converter, name in found]
    return path, params


def _entry(endpoint: str, op: Operation, path_params: list[dict], components: _Components,
           config: dict) -> dict[str, Any]:
    """One operation of the document: what `@operation` says of the view, and its schemas."""
    entry: dict[str, Any] = {
        "summary": op.summary, "tags": [op.tag],
        "operationId": endpoint.split(".", 1)[1],
        "parameters": path_params + _parameters(op, components),
        "responses": _responses(op, components),
    }
    if op.description:
        entry["description"] = op.description
    if op.public:
        entry["security"] = []
    if op.body is not None:
        entry["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": components.ref(op.body, mode="validation")}}}
    if op.multipart is not None:  # a dict, or one made from the app's settings (its examples, say)
        multipart = op.multipart(config) if callable(op.multipart) else op.multipart
        entry["requestBody"] = {"required": True, "content": {"multipart/form-data": multipart}}
    return entry


def build_document(app: Flask, blueprint: str, title: str, version: str) -> dict:
    components = _Components()
    paths: dict[str, dict] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        op: Optional[Operation] = getattr(app.view_functions[rule.endpoint], "openapi", None)
        if not rule.endpoint.startswith(blueprint + ".") or op is None:
            continue
        path, path_params = _path(rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _entry(rule.endpoint, op, path_params, components,
                                                                app.config)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version,
                 "description": "Photo object detection. Authenticate with `Authorization: Bearer "
                                "<access token>` from `POST /api/v1/auth/login` (or the browser session), "
                                "or with an API key (`X-API-Key: spt_…`, or `Authorization: Bearer spt_…`): "
                                "create one on the API keys page or with `POST /api/v1/keys`. A `detect-only` "
                                "key may only upload for detection."},
        "servers": [{"url": "/"}],
        # Swagger UI shows the sections in this order: how to get a token first.
        "tags": [{"name": tag} for tag in ("auth", "keys", "analyses", "trash")
                 if any(tag in op.get("tags", []) for ops in paths.values() for op in ops.values())],
        "paths": paths,
        "components": {
            "schemas": components.schemas,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT or spt_ API key"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
        "security": [{"bearerAuth": []}, {"apiKey": []}],
    }


_STATUS_TEXT = {
    200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 401: "Not authenticated",
    404: "Not found", 409: "Conflict", 422: "Invalid input", 429: "Too many requests",
    503: "Unavailable",
}
