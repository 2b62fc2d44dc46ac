"""Configuration: every environment variable is read once, here, into `Config`; `configure(app)`
then fills in what depends on the app (instance-folder defaults, development secrets, logging,
cookie security, trusted proxies)."""
import logging
import os
from datetime import timedelta
import secrets
import sys
from pathlib import Path

from dotenv import load_dotenv
from flask import Flask

BASE_DIR = Path(__file__).resolve().parent.parent
load_dotenv(BASE_DIR / ".env")

logger = logging.getLogger(__name__)

REQUIRED_SECRETS = ("SECRET_KEY", "JWT_SECRET_KEY")


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


def _env_bool(name: str):
    """True/False when the variable is set (1/true/yes/on are true), None when it is not."""
    value = os.environ.get(name)
    return None if value in (None, "") else value.strip().lower() in ("1", "true", "yes", "on")


def _env_list(name: str) -> list[str]:
    """A comma-separated variable as a list, blanks dropped."""
    return [item.strip() for item in (os.environ.get(name) or "").split(",") if item.strip()]


class Config:
    # Secrets: required in production; generated into the instance folder in development.
    SECRET_KEY = os.environ.get("SECRET_KEY")
    JWT_SECRET_KEY = os.environ.get("JWT_SECRET_KEY")

    # Storage. Empty means "inside the instance folder", filled in by `configure`.
    INSTANCE_PATH = os.environ.get("INSTANCE_PATH")
    SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL")
    UPLOAD_DIR = os.environ.get("UPLOAD_DIR")
    MAX_CONTENT_LENGTH = _env_int("MAX_CONTENT_LENGTH", 20 * 1024 * 1024)  # an upload request
    MAX_FILES_PER_UPLOAD = _env_int("MAX_FILES_PER_UPLOAD", 100)  # files in one upload request
    # Upload requests one account may have in a web process at once (the next gets a 429 to retry):
    # one account cannot hold every server thread. 0: no limit.
    UPLOADS_AT_ONCE = _env_int("UPLOADS_AT_ONCE", 2)
    # Event streams (a tab told the moment its photos are done) one web process serves at once: each
    # holds a server thread while the tab waits for photos; keep it under gunicorn's --threads.
    # Past it, a tab polls. 0: no streams (every tab polls).
    EVENT_STREAMS = _env_int("EVENT_STREAMS", 4)
    # DeepStack-endpoint calls one web process holds at once, whoever makes them (each holds a server
    # thread until its answer: up to DEEPSTACK_TIMEOUT while workers are down). 0: no limit.
    DEEPSTACK_AT_ONCE = _env_int("DEEPSTACK_AT_ONCE", 2)
    MAX_RUNS_PER_PHOTO = _env_int("MAX_RUNS_PER_PHOTO", 20)  # runs (re-runs) one photo may keep; 0: no limit
    # Images of shared links per client address (each slider position is drawn by the server).
    SHARE_IMAGE_RATE_LIMIT = os.environ.get("SHARE_IMAGE_RATE_LIMIT") or "120 per minute"
    # Annotated views drawn for a confidence and classes (the only pixel work a web process does):
    # per client address, views not drawn before; and at once per process (the rest wait their turn).
    DRAWN_VIEW_RATE_LIMIT = os.environ.get("DRAWN_VIEW_RATE_LIMIT") or "30 per minute"
    DRAW_CONCURRENCY = _env_int("DRAW_CONCURRENCY", 1)
    # Per user: photos kept and the bytes they take on disk (originals and thumbnails); 0: no limit.
    QUOTA_PHOTOS = _env_int("QUOTA_PHOTOS", 20_000)
    QUOTA_BYTES = _env_int("QUOTA_BYTES", 10 * 1000**3)
    # Deleted photos wait in the Trash (still counted by the quotas) this many days, then the web
    # processes purge them, looking at most every TRASH_PURGE_SECONDS (0: never; `flask
    # purge-trash` from cron instead).
    TRASH_DAYS = _env_int("TRASH_DAYS", 30)
    TRASH_PURGE_SECONDS = _env_int("TRASH_PURGE_SECONDS", 3600)
    MAX_BODY_SIZE = _env_int("MAX_BODY_SIZE", 64 * 1024)  # any other request (forms, JSON)
    MAX_IMAGE_PIXELS = _env_int("MAX_IMAGE_PIXELS", 40_000_000)

    # Detection. YOLO_MODEL empty: the first model in MODELS_DIR, else yolo11n.pt downloaded there.
    YOLO_MODEL = os.environ.get("YOLO_MODEL") or ""
    # More models by name, "fast=path/to/yolo11n_int8_openvino_model,v8=path/to/yolov8n.onnx": an
    # upload may name one (`model=`); YOLO_MODEL stays the default, named "default".
    YOLO_MODELS = os.environ.get("YOLO_MODELS") or ""
    MODELS_DIR = os.environ.get("MODELS_DIR")
    YOLO_DEVICE = os.environ.get("YOLO_DEVICE") or "auto"
    YOLO_CONF = _env_float("YOLO_CONF", 0.25)
    YOLO_IOU = _env_float("YOLO_IOU", 0.7)
    YOLO_IMGSZ = _env_int("YOLO_IMGSZ", 640)
    YOLO_STORE_FLOOR = _env_float("YOLO_STORE_FLOOR", 0.05)
    YOLO_OFFLINE = bool(_env_bool("YOLO_OFFLINE"))
    THUMBNAIL_SIZE = _env_int("THUMBNAIL_SIZE", 400)

    # Running analyses: "thread" (in-process background worker), "sync" (inside the request) or
    # "celery" (Celery workers over the broker; the web processes then never load a model).
    ANALYSIS_EXECUTOR = os.environ.get("ANALYSIS_EXECUTOR") or "thread"
    # Detection in batches (see webapp/jobs/stream.py): up to DETECT_BATCH photos per
    # prediction (0: 32 on CUDA; on the CPU as many as the model runs at once, 1 but for OpenVINO),
    # waiting at most DETECT_BATCH_WAIT_MS for a batch to fill while more photos are being read;
    # DETECT_THREADS threads read and decode photos (making a new one's thumbnail) and draw results.
    DETECT_BATCH = _env_int("DETECT_BATCH", 0)
    DETECT_BATCH_WAIT_MS = _env_float("DETECT_BATCH_WAIT_MS", 20)
    DETECT_THREADS = _env_int("DETECT_THREADS", min(4, os.cpu_count() or 1))
    # The nice value (0-19) detection, decoding and drawing run at, in threads of their own: where
    # they share the CPU with requests (the thread executor, a worker beside gunicorn), requests go
    # first. 0: the same priority as requests.
    DETECT_NICE = _env_int("DETECT_NICE", 10)
    # OpenVINO models on the CPU: "throughput" (parallel streams, photos of a batch at once; the
    # faster end to end here, see bench/RESULTS.md) or "latency" (Ultralytics' own set-up).
    DETECT_OPENVINO_HINT = os.environ.get("DETECT_OPENVINO_HINT") or "throughput"
    ANALYSIS_MAX_ATTEMPTS = _env_int("ANALYSIS_MAX_ATTEMPTS", 3)  # starts before a photo is given up
    CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or "redis://127.0.0.1:6379/0"
    # Seconds a task may run unacknowledged before Redis hands it to another worker: longer than
    # the longest analysis, or it would run twice.
    CELERY_VISIBILITY_TIMEOUT = _env_int("CELERY_VISIBILITY_TIMEOUT", 3600)
    DETECTION_WORKER = False  # True in the Celery worker process (webapp.worker), which has the model
    # Seconds between a Celery worker's looks for work whose message was lost (Redis restarted
    # without persistence, a web process killed between commit and publish): queued again.
    LOST_WORK_SECONDS = _env_int("LOST_WORK_SECONDS", 30)

    GALLERY_PER_PAGE = _env_int("GALLERY_PER_PAGE", 24)

    # JSON API.
    ACCESS_TOKEN_TTL = _env_int("ACCESS_TOKEN_TTL", 15 * 60)  # seconds
    REFRESH_TOKEN_TTL = _env_int("REFRESH_TOKEN_TTL", 30 * 24 * 3600)  # seconds
    JWT_TOKEN_LOCATION = ["headers"]
    JWT_ALGORITHM = "HS256"
    API_WAIT_TIMEOUT = _env_int("API_WAIT_TIMEOUT", 120)  # seconds, for ?wait=true
    CORS_ORIGINS = _env_list("CORS_ORIGINS")  # empty: no CORS
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI") or "memory://"
    RATELIMIT_AUTH = os.environ.get("RATELIMIT_AUTH") or "10 per minute"
    # Seconds the DeepStack endpoint waits for a Celery worker's answer.
    DEEPSTACK_TIMEOUT = _env_int("DEEPSTACK_TIMEOUT", 30)
    # Networks (CIDR, comma-separated) whose clients may call the DeepStack endpoint without a key
    # (clients that cannot send one, e.g. CodeProject.AI's): detection only, nothing stored,
    # DEEPSTACK_OPEN_RATE_LIMIT per address. Empty (the default): a key is always needed.
    DEEPSTACK_OPEN_NETWORKS = _env_list("DEEPSTACK_OPEN_NETWORKS")
    DEEPSTACK_OPEN_RATE_LIMIT = os.environ.get("DEEPSTACK_OPEN_RATE_LIMIT") or "60 per minute"
    # Requests per API key (every request it authenticates, from any address).
    API_KEY_RATE_LIMIT = os.environ.get("API_KEY_RATE_LIMIT") or "600 per minute"
    # Failed sign-ins per account, from any address, before its sign-in is refused for the window.
    LOGIN_FAILURE_LIMIT = os.environ.get("LOGIN_FAILURE_LIMIT") or "10 per 15 minutes"
    RATELIMIT_HEADERS_ENABLED = True

    # Accounts. Who may sign up: "open" (anyone), "invite" (with a link from `flask users invite`)
    # or "closed" (only the operator makes accounts: `flask users create`).
    SIGNUP = os.environ.get("SIGNUP") or "open"
    # The address people reach this instance at ("https://photos.example.com"): links in mail and
    # in the operator's commands are built from it, never from a request's Host header.
    PUBLIC_URL = (os.environ.get("PUBLIC_URL") or "").rstrip("/")
    # Mail for password resets, invitations and email changes: smtp://user:pass@host:587 (STARTTLS,
    # required), smtps://user:pass@host:465 (TLS from the start) or smtp+insecure://host:25 (a local
    # relay: nothing encrypted). Empty: no mail; the pages say to ask the operator.
    MAIL_URL = os.environ.get("MAIL_URL") or ""
    MAIL_FROM = os.environ.get("MAIL_FROM") or ""
    MAIL_TIMEOUT = _env_float("MAIL_TIMEOUT", 10)  # seconds for the SMTP server to answer
    # Password-reset mails per address (known or not, so the limit tells nothing), on top of
    # RATELIMIT_AUTH per client address.
    RESET_RATE_LIMIT = os.environ.get("RESET_RATE_LIMIT") or "3 per hour"
    INVITE_DAYS = _env_int("INVITE_DAYS", 7)  # how long an invitation or an operator's set-password link works
    TAKEOUT_HOURS = _env_int("TAKEOUT_HOURS", 24)  # how long a "Download everything" zip can be downloaded
    # With its storage (Redis) unreachable, the limits go on per process (logged once; /healthz says
    # "degraded"), and each call to it gives up within a second instead of hanging.
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    RATELIMIT_STORAGE_OPTIONS = {"socket_connect_timeout": 1, "socket_timeout": 1}
    LOG_LEVEL = os.environ.get("LOG_LEVEL") or "INFO"
    # How passwords are hashed (werkzeug's method): scrypt's own cost. Not a setting: the tests
    # alone lower it, so that signing up a thousand times does not take minutes.
    PASSWORD_HASH_METHOD = "scrypt"

    # Cookies are Secure in production unless SESSION_COOKIE_SECURE says otherwise (None: decide
    # by mode); the API's refresh cookie follows the same setting.
    SESSION_COOKIE_SECURE = _env_bool("SESSION_COOKIE_SECURE")
    TRUSTED_PROXIES = _env_int("TRUSTED_PROXIES", 0)  # reverse proxies whose X-Forwarded-* count

    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True}
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_DURATION = timedelta(days=30)  # "keep me signed in"; a log-out ends it sooner
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session


class TestConfig(Config):
    TESTING = True
    SECRET_KEY = "test-secret-key"
    JWT_SECRET_KEY = "test-jwt-secret-key-that-is-long-enough"
    SQLALCHEMY_DATABASE_URI = "sqlite://"
    ANALYSIS_EXECUTOR = "sync"
    YOLO_MODEL = "yolo11n.yaml"  # random weights, built by Ultralytics without any download
    YOLO_IMGSZ = 160  # random weights find nothing real: a small input keeps the suite fast
    YOLO_DEVICE = "cpu"
    YOLO_OFFLINE = True
    LOG_LEVEL = "WARNING"
    RATELIMIT_AUTH = "1000 per minute"
    PASSWORD_HASH_METHOD = "scrypt:1024:8:1"  # 3 ms instead of 120: the tests sign up a thousand times
    SESSION_COOKIE_SECURE = None
    TRUSTED_PROXIES = 0
    CORS_ORIGINS: list[str] = []
    TRASH_PURGE_SECONDS = 0  # no purging thread behind a test's back: the Trash's tests turn it on


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


def instance_path(config: object | None) -> str:
    """The instance folder: the config's INSTANCE_PATH, else `./instance` beside the package."""
    return getattr(config or Config, "INSTANCE_PATH", None) or str(BASE_DIR / "instance")


def is_production(app: Flask) -> bool:
    return not (app.debug or app.testing)


def configure(app: Flask) -> None:
    """The start-up steps that need the app, in order."""
    configure_logging(app)
    configure_paths(app)
    configure_secrets(app)
    configure_security(app)
    configure_accounts(app)


SIGNUP_MODES = ("open", "invite", "closed")
MAIL_SCHEMES = ("smtp", "smtps", "smtp+insecure")


def configure_accounts(app: Flask) -> None:
    """SIGNUP is one of SIGNUP_MODES; mail needs PUBLIC_URL (its links are built from it)."""
    if app.config["SIGNUP"] not in SIGNUP_MODES:
        raise ConfigurationError(f"Configuration error: SIGNUP must be one of {', '.join(SIGNUP_MODES)}, "
                                 f"not {app.config['SIGNUP']!r}.")
    public = app.config.get("PUBLIC_URL") or ""
    if public and not public.startswith(("https://", "http://")):
        raise ConfigurationError(f"Configuration error: PUBLIC_URL must start with https:// (or http://), "
                                 f"not {public!r}.")
    mail = app.config.get("MAIL_URL") or ""
    if not mail:
        return
    if mail.split("://", 1)[0] not in MAIL_SCHEMES or "://" not in mail:
        raise ConfigurationError("Configuration error: MAIL_URL must be smtp://user:password@host:587 (STARTTLS), "
                                 "smtps://user:password@host:465 or smtp+insecure://host:25.")
    if not public:
        raise ConfigurationError("Configuration error: MAIL_URL is set but PUBLIC_URL is not: set PUBLIC_URL to "
                                 "the address people reach this instance at (https://photos.example.com), "
                                 "which the links in mail are built from.")
    if not app.config.get("MAIL_FROM"):
        raise ConfigurationError("Configuration error: MAIL_URL is set but MAIL_FROM is not: set the sender, "
                                 "e.g. MAIL_FROM='Spotter <noreply@photos.example.com>'.")


def configure_logging(app: Flask) -> None:
    root = logging.getLogger()
    if not any(getattr(h, "_webapp", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._webapp = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    level = app.config["LOG_LEVEL"]
    root.setLevel(level)
    logging.getLogger("webapp").setLevel(level)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # a line per plugin, every command


def configure_paths(app: Flask) -> None:
    """Fill in the instance-folder defaults for the database, the uploads and the models."""
    instance = Path(app.instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    uri = app.config.get("SQLALCHEMY_DATABASE_URI") or f"sqlite:///{instance / 'webapp.sqlite3'}"
    if uri.startswith("postgres://"):  # the scheme some hosts still hand out
        uri = "postgresql://" + uri[len("postgres://"):]
    app.config["SQLALCHEMY_DATABASE_URI"] = uri
    app.config["UPLOAD_DIR"] = str(Path(app.config.get("UPLOAD_DIR") or instance / "uploads").resolve())
    app.config["MODELS_DIR"] = str(Path(app.config.get("MODELS_DIR") or instance / "models").resolve())


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
    """Secure cookies (SESSION_COOKIE_SECURE, or on in production) and trusted proxies."""
    secure = app.config.get("SESSION_COOKIE_SECURE")
    secure = is_production(app) if secure is None else bool(secure)
    app.config["SESSION_COOKIE_SECURE"] = secure
    app.config["REMEMBER_COOKIE_SECURE"] = secure
    proxies = int(app.config.get("TRUSTED_PROXIES") or 0)
    if proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)
