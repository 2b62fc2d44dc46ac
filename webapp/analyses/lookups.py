"""Finding a user's runs: by public id (anyone else's is not found, exactly alike), several at
once, by the bytes of a photo, and the runs of a photo."""
import re
from pathlib import Path
from typing import Optional

import sqlalchemy as sa
from sqlalchemy.orm import contains_eager, joinedload, selectinload

from webapp import storage
from webapp.errors import NotFound
from webapp.extensions import db
from webapp.models import Photo, Run, RunStatus, User

# The images of a run: its photo's original (as uploaded), what pages show of it (the rendition,
# or the original where a browser shows that), its thumbnail; the run's annotated image (drawn
# when first asked for: `viewer.annotated_file`) and annotated thumbnail.
VARIANTS = ("original", "display", "annotated", "thumbnail", "annotated-thumbnail")
PUBLIC_ID = re.compile(r"[0-9a-f]{32}")  # uuid4().hex, as uploads make them
NOT_FOUND = "This photo does not exist, or it was deleted."
RUN_NOT_FOUND = "This run does not exist, or it was deleted."


def owned_run(user: User, public_id: str, with_detections: bool = False, exact: bool = False) -> Run:
    """The user's run with this public id. Anyone else's, or none, is NotFound, exactly alike;
    so is anything not shaped like a public id (32 lower-case hex digits), which never reaches
    the database (PostgreSQL refuses NUL). A photo's own id (its first run's) still finds the
    photo once that run has been deleted: its current run; not with `exact`, for what acts on one
    run (delete it, retry it, share it), which must never act on another."""
    if not PUBLIC_ID.fullmatch(public_id):
        raise NotFound(NOT_FOUND)
    stmt = _kept(sa.select(Run).where(Run.user_id == user.id))
    if with_detections:
        stmt = stmt.options(selectinload(Run.detections))
    found = db.session.scalar(stmt.where(Run.public_id == public_id))
    if found is None and not exact:
        found = db.session.scalar(stmt.where(Run.current, Run.photo_id == sa.select(Photo.id).where(
            Photo.public_id == public_id).scalar_subquery()))
    if found is None:
        raise NotFound(RUN_NOT_FOUND if exact else NOT_FOUND)
    return found


def owned_runs(user: User, public_ids: list[str], with_detections: bool = False) -> list[Run]:
    """The user's runs among these public ids (anything else, and anyone else's, left out),
    newest first."""
    wanted = {pid for pid in public_ids if PUBLIC_ID.fullmatch(pid)}
    if not wanted:
        return []
    stmt = _kept(sa.select(Run).where(Run.user_id == user.id, Run.public_id.in_(wanted)).order_by(
        Run.created_at.desc(), Run.id.desc()))
    if with_detections:
        stmt = stmt.options(selectinload(Run.detections))
    return list(db.session.scalars(stmt))


def runs_by_id(user: User, ids: list[int]) -> list[Run]:
    """These runs of the user, with their photos and detections, in the order given (a run
    deleted meanwhile is left out): an upload's answer, read again once it has waited."""
    db.session.expire_all()
    found = {r.id: r for r in db.session.scalars(_kept(sa.select(Run).where(Run.id.in_(ids), Run.user_id == user.id))
                                                 .options(selectinload(Run.detections)))}
    return [found[i] for i in ids if i in found]


def _kept(stmt):
    """Runs with their photos, in the same statement (never a run without its photo), leaving out
    photos in the Trash: no read finds them."""
    return stmt.join(Run.photo).where(Photo.trashed_at.is_(None)).options(contains_eager(Run.photo))


def runs_of_photo(run: Run) -> list[Run]:
    """Every run of the run's photo, newest first, with their detections."""
    return list(db.session.scalars(sa.select(Run).where(Run.photo_id == run.photo_id)
                                   .options(selectinload(Run.detections))
                                   .order_by(Run.queued_at.desc(), Run.id.desc())))


def public_id_of(run_id: int) -> Optional[str]:
    """A run's public id, or None once it is deleted."""
    return db.session.scalar(sa.select(Run.public_id).where(Run.id == run_id))


def find_duplicate(user: User, sha256: str) -> Optional[Run]:
    """The current run of the user's newest photo with these exact bytes, if any."""
    return db.session.scalars(sa.select(Run).join(Photo, Photo.id == Run.photo_id).where(
        Photo.user_id == user.id, Photo.sha256 == sha256.lower(), Run.current).order_by(
        Photo.created_at.desc(), Photo.id.desc()).limit(1)).first()


def count_failed(user: User) -> int:
    """How many of the user's current runs failed (the gallery offers to retry them)."""
    return db.session.scalar(sa.select(sa.func.count()).select_from(Run).where(
        Run.user_id == user.id, Run.current, Run.status == RunStatus.FAILED)) or 0


def stored_image(run: Run, variant: str) -> Optional[Path]:
    """Where one of a run's images is stored (its photo's original or thumbnail, or its own
    annotated image), or None: an unknown variant, one not made (yet), or a file gone."""
    if variant not in VARIANTS:
        return None
    relative = {"original": run.photo.original_path, "display": run.photo.shown_path,
                "thumbnail": run.photo.thumbnail_path, "annotated": run.annotated_path,
                "annotated-thumbnail": run.annotated_thumbnail_path}[variant]
    path = storage.absolute(relative) if relative else None
    return path if path is not None and path.is_file() else None


def current_runs_since(user: User, since) -> dict[str, list[Run]]:
    """{sha256: current runs of the user's photos with those bytes, uploaded at or after `since`,
    oldest first}: what an interrupted upload stored, for the same upload sent again."""
    found: dict[str, list[Run]] = {}
    for run in db.session.scalars(sa.select(Run).join(Photo, Photo.id == Run.photo_id).where(
            Photo.user_id == user.id, Photo.created_at >= since, Run.current).order_by(Photo.id)
            .options(joinedload(Run.photo, innerjoin=True))):
        found.setdefault(run.photo.sha256, []).append(run)
    return found


def runs_of_photo_since(photo_id: int, since) -> Optional[Run]:
    """The newest run of the photo asked for at or after `since`, or None."""
    return db.session.scalars(sa.select(Run).where(Run.photo_id == photo_id, Run.queued_at >= since)
                              .order_by(Run.queued_at.desc(), Run.id.desc()).limit(1)).first()
