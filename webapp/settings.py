"""Start-up configuration steps that need the app: paths, secrets, logging, cookie security."""
import logging
import os
import secrets
import sys
from pathlib import Path

from flask import Flask

logger = logging.getLogger(__name__)

REQUIRED_SECRETS = ("SECRET_KEY", "JWT_SECRET_KEY")


class ConfigurationError(SystemExit):
    """Start-up stops: the one-line message goes to stderr, the exit status is 3 (which
    gunicorn reads as "worker failed to boot", so it stops instead of respawning)."""

    EXIT_STATUS = 3

    def __init__(self, message: str):
        super().__init__(self.EXIT_STATUS)
        self.message = message
        sys.stderr.write(message + "\n")
        sys.stderr.flush()

    def __str__(self) -> str:
        return self.message


def is_production(app: Flask) -> bool:
    return not (app.debug or app.testing)


def configure_logging(app: Flask) -> None:
    root = logging.getLogger()
    if not any(getattr(h, "_webapp", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._webapp = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    level = app.config.get("LOG_LEVEL", "INFO")
    root.setLevel(level)
    logging.getLogger("webapp").setLevel(level)


def configure_paths(app: Flask) -> None:
    """Fill in the instance-folder defaults for the database and the uploads."""
    instance = Path(app.instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{instance / 'webapp.sqlite3'}"
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("postgres://"):  # the scheme some hosts still hand out
        app.config["SQLALCHEMY_DATABASE_URI"] = "postgresql://" + uri[len("postgres://"):]
    upload_dir = Path(app.config.get("UPLOAD_DIR") or instance / "uploads")
    app.config["UPLOAD_DIR"] = str(upload_dir.resolve())


def configure_secrets(app: Flask) -> None:
    """Production needs both secrets set; development keeps generated ones in the instance folder."""
    for name in REQUIRED_SECRETS:
        if app.config.get(name):
            continue
        if is_production(app):
            raise ConfigurationError(
                f"Configuration error: {name} is not set. Set it in the environment or .env "
                f"(e.g. {name}=$(python -c 'import secrets; print(secrets.token_hex(32))'))."
            )
        app.config[name] = _instance_secret(Path(app.instance_path), name)


def _instance_secret(instance: Path, name: str) -> str:
    path = instance / name.lower()
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value)
    logger.info("Generated a development %s in %s", name, path)
    return value


def configure_security(app: Flask) -> None:
    """Cookies are Secure in production unless SESSION_COOKIE_SECURE=0 says otherwise."""
    secure_env = os.environ.get("SESSION_COOKIE_SECURE")
    secure = is_production(app) if secure_env is None else secure_env.lower() in ("1", "true", "yes")
    app.config["SESSION_COOKIE_SECURE"] = secure
    app.config["REMEMBER_COOKIE_SECURE"] = secure
    proxies = int(os.environ.get("TRUSTED_PROXIES") or 0)
    if proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)
