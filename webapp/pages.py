"""Small helpers shared by the HTML blueprints."""
from flask import request


def wants_partial() -> bool:
    """An HTMX request (or our upload script, which sends the same header) gets a fragment."""
    return request.headers.get("HX-Request") == "true"
