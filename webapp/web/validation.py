"""Validate request data (a query, a form, a JSON body) with Pydantic models: one place turns bad
input into one error shape, a 422 problem (for a page, its message)."""
from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from webapp.web.answers import ProblemError

M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [{"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
                  for e in exc.errors(include_url=False, include_context=False, include_input=False)]
        raise ProblemError(422, "The request is invalid: " + "; ".join(
            f"{'.'.join(e['loc']) or 'body'}: {e['msg']}" for e in errors), errors=errors) from None


def _multi(values, model: type[BaseModel]) -> dict:
    """A MultiDict as a dict: list-typed fields keep every value, others the first."""
    lists = {name for name, f in model.model_fields.items() if "list" in str(f.annotation)}
    return {k: values.getlist(k) if k in lists else values.get(k) for k in values.keys()}


def query(model: type[M]) -> M:
    return parse(model, _multi(request.args, model))


def form(model: type[M]) -> M:
    return parse(model, _multi(request.form, model))


def json_body(model: type[M]) -> M:
    body, limit = request.get_data(cache=True), request.max_content_length
    if request.content_length is None and limit is not None and len(body) >= limit:
        raise RequestEntityTooLarge()  # sent without a length (chunked) and cut at the limit: not "invalid JSON"
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # the body is capped (MAX_BODY_SIZE), its nesting is not
        raise ProblemError(400, "The JSON body is nested too deeply.") from None
    if data is None:
        if request.mimetype != "application/json":
            raise ProblemError(415, "Send a JSON body with Content-Type: application/json.")
        raise ProblemError(400, "The body is not valid JSON.")
    return parse(model, data)
