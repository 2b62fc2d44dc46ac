"""Closing an account: every row and every file of it goes (its photos and their runs, labels,
share links, API keys, tokens, takeouts, invitations for its address), nothing of anyone else's.
Its owner does it from the account page (with their password), the operator with `flask users
delete`. In-flight work finds no row when it finishes, and removes what it wrote."""
import logging

import sqlalchemy as sa

from webapp import storage
from webapp.auth import tokens
from webapp.extensions import db
from webapp.models import (
    ApiKey, Detection, IdempotentRequest, Invite, Photo, RefreshToken, Run, RunLabel, ShareLink, Takeout, User,
    UserLabel, utcnow,
)

logger = logging.getLogger(__name__)


def user_folder(user_id: int) -> str:
    """The account's folder under UPLOAD_DIR: its photos' folders and its takeouts."""
    return str(user_id)


def delete_account(user: User) -> None:
    """Delete the account, its rows and then its files. First it is disabled and every session
    and token ended (committed), so nothing new lands while it goes. Commits."""
    user_id, email = user.id, user.email
    db.session.execute(sa.select(User.id).where(User.id == user_id).with_for_update())
    user.disabled_at = user.disabled_at or utcnow()
    user.end_sessions()
    tokens.revoke_all(user)  # commits
    runs = sa.select(Run.id).where(Run.user_id == user_id).scalar_subquery()
    for statement in (
        sa.delete(ShareLink).where(ShareLink.user_id == user_id),
        sa.delete(ApiKey).where(ApiKey.user_id == user_id),
        sa.delete(RefreshToken).where(RefreshToken.user_id == user_id),
        sa.delete(IdempotentRequest).where(IdempotentRequest.user_id == user_id),
        sa.delete(Takeout).where(Takeout.user_id == user_id),
        sa.delete(UserLabel).where(UserLabel.user_id == user_id),
        sa.delete(RunLabel).where(RunLabel.user_id == user_id),
        sa.delete(Detection).where(Detection.run_id.in_(runs)),
        sa.delete(Run).where(Run.user_id == user_id),
        sa.delete(Photo).where(Photo.user_id == user_id),
        sa.delete(Invite).where(sa.or_(Invite.user_id == user_id, Invite.email == email)),
        sa.delete(User).where(User.id == user_id),
    ):
        db.session.execute(statement.execution_options(synchronize_session=False))
    db.session.commit()
    db.session.expunge_all()
    storage.delete_folder(user_folder(user_id))
    logger.info("Account %s deleted with its photos and files", user_id)
