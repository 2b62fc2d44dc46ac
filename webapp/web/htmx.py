"""How the HTML views answer scripted requests: a fragment instead of a whole page."""
from flask import request

# Sent by our own upload script (static/app.js), which is not htmx but also swaps in fragments.
SCRIPT_HEADER = ("X-Requested-With", "XMLHttpRequest")


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def wants_partial() -> bool:
    """An htmx request or our upload script: answer with a fragment, not a whole page."""
    return is_htmx() or request.headers.get(SCRIPT_HEADER[0]) == SCRIPT_HEADER[1]


def triggered_by(element_id: str) -> bool:
    """The htmx request came from the element with this id (htmx sends it as HX-Trigger)."""
    return is_htmx() and request.headers.get("HX-Trigger") == element_id
