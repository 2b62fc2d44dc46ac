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
    register_errorhandlers(app)
    register_cli(app)
    register_static_versions(app)
    return app


def register_extensions(app: Flask) -> None:
    from webapp import bodies, headers
    from webapp.extensions import csrf, db, jwt, limiter, login_manager, migrate

    db.init_app(app)
    migrate.init_app(app, db, directory=str(BASE_DIR / "migrations"), render_as_batch=True)
    login_manager.init_app(app)
    bodies.init_app(app)  # before the CSRF check, which parses the form
    csrf.init_app(app)
    jwt.init_app(app)
    limiter.init_app(app)
    headers.init_app(app)


def register_subsystems(app: Flask) -> None:
    from webapp import detection, jobs, storage

    storage.init_app(app)
    detection.init_app(app)
    jobs.init_app(app)


def register_blueprints(app: Flask) -> None:
    from webapp import api, deepstack, shares
    from webapp.analyses import bp as analyses_bp
    from webapp.extensions import csrf
    from webapp.auth import bp as auth_bp
    from webapp.health import bp as health_bp

    app.register_blueprint(health_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(analyses_bp)
    shares.init_app(app)
    api.init_app(app)
    app.register_blueprint(deepstack.bp)
    csrf.exempt(deepstack.bp)  # no cookie authenticates it: an API key does


def register_errorhandlers(app: Flask) -> None:
    from webapp import errors

    errors.init_app(app)


def register_cli(app: Flask) -> None:
    from webapp import cli

    cli.init_app(app)


def register_static_versions(app: Flask) -> None:
    """Every `url_for('static', ...)` carries `?v=<the file's hash>`: nginx (or a browser) may keep
    a static file an hour, and an upgrade's new app.js or app.css is still fetched at once."""
    import hashlib
    from pathlib import Path

    versions: dict[str, tuple[float, str]] = {}

    def add_version(endpoint, values) -> None:
        if endpoint != "static" or "v" in values or "filename" not in values:
            return
        path = Path(app.static_folder) / values["filename"]
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return
        known = versions.get(values["filename"])
        if known is None or known[0] != mtime:
            known = versions[values["filename"]] = (mtime, hashlib.sha256(path.read_bytes()).hexdigest()[:12])
        values["v"] = known[1]

    app.url_defaults(add_version)
