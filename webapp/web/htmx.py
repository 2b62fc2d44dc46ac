"""How the HTML views answer htmx's requests: a fragment instead of a whole page."""
from flask import request


def wants_partial() -> bool:
    """An htmx request: answer with a fragment, not a whole page."""
    return request.headers.get("HX-Request") == "true"


def triggered_by(element_id: str) -> bool:
    """The htmx request came from the element with this id (htmx sends it as HX-Trigger)."""
    return wants_partial() and request.headers.get("HX-Trigger") == element_id
