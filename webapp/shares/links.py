"""Share links, made and checked.

- The link is `/s/<token>`: an itsdangerous URL-safe *timed* token (its own salt) carrying the
  link's random `share_id` and nothing else, stamped with the moment the link was made, so the
  same link can be shown again on the "Shared links" page. A changed SECRET_KEY ends every link.
- Each link lives 1, 7 or 30 days, or forever (the row's `lifetime_seconds`, checked as the
  token's max age), and can be revoked; an expired or revoked link is LinkGone (a friendly 410
  page), a tampered or unknown one (or one whose photo was deleted: its rows go with it) NotFound.
- What the link shows carries no email, no other photo and no id that any other route takes:
  its images come only through the token.
"""
from datetime import datetime, timezone
from typing import Optional

import sqlalchemy as sa
from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from sqlalchemy.orm import selectinload

from webapp.errors import Gone, NotFound, Refused
from webapp.extensions import db
from webapp.models import Run, ShareLink, User, utcnow

SALT = "share-link"
DAY = 24 * 3600
LIFETIMES = {"1d": ("1 day", DAY), "7d": ("7 days", 7 * DAY), "30d": ("30 days", 30 * DAY), "never": ("Never", None)}
MAX_LINKS_PER_USER = 500
NOT_FOUND = ("This link does not exist: check that it was copied whole. The photo (or that run of it) may also "
             "have been deleted.")


class LinkGone(Gone):
    """The link was real but has expired or been revoked."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _serializer(moment: Optional[datetime] = None) -> URLSafeTimedSerializer:
    """The links' serializer; with `moment`, one that stamps tokens with that time (so a link
    made earlier comes out the same when it is shown again)."""
    signer = TimestampSigner
    if moment is not None:
        stamp = int(moment.timestamp())
        signer = type("StampedSigner", (TimestampSigner,), {"get_timestamp": lambda self: stamp})
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALT, signer=signer)


def token_for(link: ShareLink) -> str:
    return _serializer(link.created_at).dumps({"s": link.share_id})


def lifetime_name(seconds: Optional[int]) -> str:
    return next((name for name, value in LIFETIMES.values() if value == seconds), f"{seconds} s")


def create(run: Run, lifetime: Optional[int]) -> ShareLink:
    """A new link to the run (owned by its owner). Refused: a run not finished, or the most
    links. Commits."""
    if not run.is_done:
        raise Refused("Only a finished result can be shared.", Refused.CONFLICT)
    now = utcnow()
    live = sum(1 for link in db.session.scalars(sa.select(ShareLink).where(  # the live ones: not expired
        ShareLink.user_id == run.user_id, ShareLink.revoked_at.is_(None)))
        if link.expires_at is None or link.expires_at > now)
    if live >= MAX_LINKS_PER_USER:
        raise Refused(f"You already have {MAX_LINKS_PER_USER} shared links: revoke some first.", Refused.CONFLICT)
    link = ShareLink(user_id=run.user_id, run_id=run.id, lifetime_seconds=lifetime,
                     created_at=utcnow().replace(microsecond=0))
    db.session.add(link)
    db.session.commit()
    return link


def resolve(token: str) -> ShareLink:
    """The live link this token is, with its run's detections. Raises LinkGone (expired,
    revoked) or NotFound."""
    if len(token) > 300:
        raise NotFound(NOT_FOUND)
    serializer = _serializer()
    try:
        payload = serializer.loads(token)  # signature only, first: which link is it?
        share_id = payload["s"] if isinstance(payload, dict) else None
    except (BadSignature, KeyError, TypeError, ValueError):
        raise NotFound(NOT_FOUND) from None
    link = db.session.scalar(sa.select(ShareLink).where(ShareLink.share_id == str(share_id)).options(
        selectinload(ShareLink.run).selectinload(Run.detections)))
    if link is None:
        raise NotFound(NOT_FOUND)
    if link.revoked_at is not None:
        raise LinkGone("The owner stopped sharing this photo.")
    if link.run.owner.is_disabled:
        raise LinkGone("This link no longer works.")
    if link.lifetime_seconds is not None:
        try:
            serializer.loads(token, max_age=link.lifetime_seconds)
        except SignatureExpired as exc:
            stamped = exc.date_signed
            if not (stamped and stamped > datetime.now(timezone.utc)):  # ahead: another host's clock runs fast
                raise LinkGone("This link has expired.") from exc
    if not link.run.is_done or link.run.photo.in_trash:  # in the Trash: back once restored
        raise NotFound(NOT_FOUND)
    return link


def count_view(link: ShareLink) -> None:
    """Someone opened the link's page. Commits."""
    db.session.execute(sa.update(ShareLink).where(ShareLink.id == link.id).values(views=ShareLink.views + 1))
    db.session.commit()


def links_of(user: User) -> list[ShareLink]:
    """The user's links, newest first, with their runs."""
    return list(db.session.scalars(sa.select(ShareLink).where(ShareLink.user_id == user.id)
                                   .options(selectinload(ShareLink.run))
                                   .order_by(ShareLink.created_at.desc(), ShareLink.id.desc())))


def revoke(user: User, share_id: str) -> None:
    """End the user's link at once (again: nothing changes). NotFound for none such. Commits."""
    link = db.session.scalar(sa.select(ShareLink).where(ShareLink.share_id == share_id,
                                                        ShareLink.user_id == user.id))
    if link is None:
        raise NotFound("This link does not exist (any more).")
    if link.revoked_at is None:
        link.revoked_at = utcnow()
        db.session.commit()
