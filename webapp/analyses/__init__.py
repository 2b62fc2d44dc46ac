"""Analyses: the gallery, upload and detail pages (blueprint `analyses`), the services behind
them and the API, the pipeline that runs an analysis, and exports."""
from flask import Blueprint

bp = Blueprint("analyses", __name__)

from webapp.analyses import routes  # noqa: E402,F401
