"""The JSON API under /api/v1 (blueprint `api`: analyses, accounts, keys) and its Swagger UI at
/docs (blueprint `docs`). The route modules register on these blueprints when imported."""
from flask import Blueprint, Flask

from webapp.extensions import csrf

bp = Blueprint("api", __name__, url_prefix="/api/v1")
docs_bp = Blueprint("docs", __name__)


def init_app(app: Flask) -> None:
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
