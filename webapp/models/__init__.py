"""Database models (SQLAlchemy 2.0, typed): accounts, photos and their runs, share links,
requests sent with an Idempotency-Key."""
from webapp.models.accounts import ApiKey, ApiKeyScope, Invite, RefreshToken, Takeout, TakeoutStatus, User
from webapp.models.photos import Detection, Photo, Run, RunLabel, RunStatus, UserLabel, count_labels
from webapp.models.requests import IdempotentRequest
from webapp.models.shares import ShareLink
from webapp.models.types import UTCDateTime, utcnow

__all__ = ["ApiKey", "ApiKeyScope", "Detection", "IdempotentRequest", "Invite", "Photo", "RefreshToken", "Run",
           "RunLabel", "RunStatus", "ShareLink", "Takeout", "TakeoutStatus", "UTCDateTime", "User", "UserLabel",
           "count_labels", "utcnow"]
