"""Share links (blueprint `shares`): a read-only page of one run's result (annotated image, live
boxes with the slider, detection table) for anyone who has the link, without signing in; the
owner's "Shared links" page lists and revokes them. `links` makes and checks the links; `routes`
serves the owner's side and the public side."""
from flask import Blueprint

bp = Blueprint("shares", __name__)
