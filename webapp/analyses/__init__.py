from flask import Blueprint

bp = Blueprint("analyses", __name__)

from webapp.analyses import routes  # noqa: E402,F401
