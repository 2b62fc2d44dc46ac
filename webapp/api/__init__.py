"""The JSON API under /api/v1 (blueprint `api`) and its Swagger UI at /docs."""
from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")
docs_bp = Blueprint("docs", __name__)

from webapp.api import analyses, auth_routes, docs, keys_routes  # noqa: E402,F401


def init_app(app) -> None:
    from webapp.extensions import csrf

    # The API checks CSRF itself, and only for requests authenticated by the session cookie.
    csrf.exempt(bp)
    app.register_blueprint(bp)
    app.register_blueprint(docs_bp)
    origins = app.config["CORS_ORIGINS"]
    if origins:
        from flask_cors import CORS

        CORS(app, resources={r"/api/*": {"origins": origins}}, supports_credentials=True,
             allow_headers=["Authorization", "Content-Type", "X-Requested-With", "X-CSRFToken"],
             expose_headers=["Location", "Retry-After"])
