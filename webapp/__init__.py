"""The photo-detection web app: `create_app()` builds it, with no side effects on the database
(start-up work such as `flask recover-interrupted` is an explicit step)."""
from flask import Flask

from webapp.config import BASE_DIR, Config, configure, instance_path


def create_app(config: object | None = None) -> Flask:
    """Build the app. `config` is a config class/object; default: `Config` (the environment)."""
    # The package lives in webapp/, but templates/ and static/ sit at the project's top level.
    app = Flask(
        __name__,
        instance_path=instance_path(config),
        template_folder=str(BASE_DIR / "templates"),
        static_folder=str(BASE_DIR / "static"),
    )
    app.config.from_object(config or Config)
    configure(app)
    register_extensions(app)
    register_subsystems(app)
    register_blueprints(app)
    register_cli(app)
    return app


def register_extensions(app: Flask) -> None:
    from webapp import web
    from webapp.extensions import csrf, db, jwt, limiter, login_manager, migrate, shared_limits

    db.init_app(app)
    migrate.init_app(app, db, directory=str(BASE_DIR / "migrations"), render_as_batch=True)
    login_manager.init_app(app)
    web.init_app(app)  # body limits before the CSRF check, which parses the form; headers; error answers
    csrf.init_app(app)
    jwt.init_app(app)
    limiter.init_app(app)
    web.init_after_limiter(app)  # the app's own Retry-After stands, whatever the limiter's headers say
    shared_limits.reset()  # counts kept here while the limiter's storage is down: this app's own


def register_subsystems(app: Flask) -> None:
    from webapp import storage
    from webapp.detection import availability
    from webapp.jobs import scheduling

    storage.init_app(app)
    availability.init_app(app)
    scheduling.init_app(app)


def register_blueprints(app: Flask) -> None:
    from webapp import api
    from webapp.analyses import routes as pages
    from webapp.api import accounts, analyses, docs, keys, trash  # noqa: F401 - their routes join the API's blueprint
    from webapp.auth import routes as auth_pages
    from webapp.deepstack import routes as deepstack
    from webapp.health import routes as health
    from webapp.shares import routes as shares

    app.register_blueprint(health.bp)
    app.register_blueprint(auth_pages.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(shares.bp)
    api.init_app(app)
    deepstack.init_app(app)


def register_cli(app: Flask) -> None:
    from webapp import cli

    cli.init_app(app)
