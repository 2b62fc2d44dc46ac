"""Configuration read from the environment (and a `.env` file beside the project)."""
import os
from pathlib import Path

from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent.parent
load_dotenv(BASE_DIR / ".env")


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


class Config:
    # Secrets: required in production; generated into the instance folder in development.
    SECRET_KEY = os.environ.get("SECRET_KEY")
    JWT_SECRET_KEY = os.environ.get("JWT_SECRET_KEY")

    # Storage. Empty means "inside the instance folder", filled in by create_app.
    SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL")
    UPLOAD_DIR = os.environ.get("UPLOAD_DIR")
    MAX_CONTENT_LENGTH = _env_int("MAX_CONTENT_LENGTH", 20 * 1024 * 1024)
    MAX_IMAGE_PIXELS = _env_int("MAX_IMAGE_PIXELS", 40_000_000)

    # Detection.
    YOLO_MODEL = os.environ.get("YOLO_MODEL") or "yolo11n.pt"
    YOLO_DEVICE = os.environ.get("YOLO_DEVICE") or "auto"
    YOLO_CONF = _env_float("YOLO_CONF", 0.25)
    YOLO_IOU = _env_float("YOLO_IOU", 0.7)
    YOLO_IMGSZ = _env_int("YOLO_IMGSZ", 640)
    YOLO_STORE_FLOOR = _env_float("YOLO_STORE_FLOOR", 0.05)
    THUMBNAIL_SIZE = _env_int("THUMBNAIL_SIZE", 400)

    # Running analyses: "thread" (in-process background worker) or "sync" (inside the request).
    ANALYSIS_EXECUTOR = os.environ.get("ANALYSIS_EXECUTOR") or "thread"
    ANALYSIS_WORKERS = _env_int("ANALYSIS_WORKERS", 1)

    GALLERY_PER_PAGE = _env_int("GALLERY_PER_PAGE", 24)

    # JSON API.
    ACCESS_TOKEN_TTL = _env_int("ACCESS_TOKEN_TTL", 15 * 60)  # seconds
    REFRESH_TOKEN_TTL = _env_int("REFRESH_TOKEN_TTL", 30 * 24 * 3600)  # seconds
    JWT_TOKEN_LOCATION = ["headers"]
    JWT_ALGORITHM = "HS256"
    API_WAIT_TIMEOUT = _env_int("API_WAIT_TIMEOUT", 120)  # seconds, for ?wait=true
    CORS_ORIGINS = os.environ.get("CORS_ORIGINS") or ""  # comma-separated; empty: no CORS
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI") or "memory://"
    RATELIMIT_AUTH = os.environ.get("RATELIMIT_AUTH") or "10 per minute"
    RATELIMIT_HEADERS_ENABLED = True
    LOG_LEVEL = os.environ.get("LOG_LEVEL") or "INFO"

    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True}
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session


class TestConfig(Config):
    TESTING = True
    SECRET_KEY = "test-secret-key"
    JWT_SECRET_KEY = "test-jwt-secret-key-that-is-long-enough"
    SQLALCHEMY_DATABASE_URI = "sqlite://"
    ANALYSIS_EXECUTOR = "sync"
    YOLO_MODEL = "yolo11n.yaml"
    YOLO_DEVICE = "cpu"
    LOG_LEVEL = "WARNING"
    RATELIMIT_AUTH = "1000 per minute"
