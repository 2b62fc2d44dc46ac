"""The OpenAPI document and the offline Swagger UI that reads it."""
from flask import current_app, render_template

from webapp.api import bp, docs_bp
from webapp.api.openapi import build_document


@bp.route("/openapi.json", methods=["GET"])
def openapi_json():
    return build_document(current_app, "api", title="Spotter API", version="1")


@docs_bp.route("/docs", methods=["GET"])
def swagger_ui():
    return render_template("docs.html")
