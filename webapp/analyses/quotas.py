"""What a user may keep: QUOTA_PHOTOS photos taking at most QUOTA_BYTES on disk (originals and
thumbnails; 0: no limit), and how much they use."""
from dataclasses import dataclass
from typing import Optional

import sqlalchemy as sa
from flask import current_app

from webapp.errors import Refused
from webapp.extensions import db
from webapp.models import User
from webapp.storage import human_size


class QuotaExceeded(Refused):
    """The photo would take the user past QUOTA_PHOTOS or QUOTA_BYTES: nothing was stored."""

    kind = Refused.QUOTA


def quota_message(config, photos: int, stored: int) -> Optional[str]:
    """Why a user with these totals is over a quota, or None."""
    most_photos, most_bytes = config["QUOTA_PHOTOS"], config["QUOTA_BYTES"]
    if most_photos and photos > most_photos:
        return (f"Your library is full: it may hold {most_photos:,} photos (those in the Trash count until "
                "it is emptied). Delete some and empty the Trash to make room for new ones.")
    if most_bytes and stored > most_bytes:
        return (f"Your storage is full: your photos may take {human_size(most_bytes)} (those in the Trash count "
                "until it is emptied). Delete some and empty the Trash to make room for new ones.")
    return None


def check_quota(photos: int, stored: int) -> None:
    """Raise QuotaExceeded when a user with these totals is over a quota."""
    if message := quota_message(current_app.config, photos, stored):
        raise QuotaExceeded(message)


@dataclass(frozen=True)
class Usage:
    """What a user keeps, against the quotas (0: no limit)."""

    photos: int
    stored_bytes: int
    quota_photos: int
    quota_bytes: int
    files_per_upload: int
    trashed: int = 0  # of `photos`, in the Trash

    def share(self, used: int, most: int) -> Optional[float]:
        return min(1.0, used / most) if most else None


def usage(user: User) -> Usage:
    config = current_app.config
    photos, stored, trashed = db.session.execute(
        sa.select(User.photos, User.stored_bytes, User.trashed).where(User.id == user.id)).one()
    return Usage(photos, stored, config["QUOTA_PHOTOS"], config["QUOTA_BYTES"], config["MAX_FILES_PER_UPLOAD"],
                 trashed)
