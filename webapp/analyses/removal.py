"""Deleting: a photo with every run (and its folder), or one run of a photo. Each takes the
photo's lock first (`library.current_run.lock_photos`), as finishing runs do, so of two deletes
at once the second finds nothing (NotFound), the kept counts go down once, and a photo never
shows no run."""
import sqlalchemy as sa

from webapp import storage
from webapp.analyses.lookups import NOT_FOUND
from webapp.analyses.viewer import view_files
from webapp.errors import NotFound, Refused
from webapp.extensions import db
from webapp.library.counts import count_created, count_trashed, forget_labels
from webapp.library.current_run import latest_finished, lock_photos, make_current
from webapp.models import Photo, Run


class OnlyRun(Refused):
    """A photo's only run cannot be deleted on its own."""

    kind = Refused.CONFLICT


def delete_photo(run: Run, from_trash: bool = False) -> None:
    """Delete the run's photo with every run (their detections go with them) and then its
    folder, with whatever a run still going on has written there (a run that finishes later
    finds no row and removes its file): for good, not to the Trash (trash.py). NotFound when
    another delete won, and with `from_trash` when the photo is no longer in the Trash (restored
    meanwhile)."""
    photo_id, user_id = run.photo_id, run.user_id  # its own columns: the photo may be gone
    detach(run)
    if not lock_photos([photo_id]):
        db.session.rollback()
        raise NotFound(NOT_FOUND)
    photo = db.session.scalar(sa.select(Photo).where(Photo.id == photo_id).execution_options(populate_existing=True))
    if from_trash and photo.trashed_at is None:
        db.session.rollback()
        raise NotFound(NOT_FOUND)
    folder, trashed = photo.folder, photo.trashed_at is not None
    # its runs too: this waits for a run still committing its labels, so they are counted out
    db.session.execute(sa.select(Run.id).where(Run.photo_id == photo_id).order_by(Run.id).with_for_update())
    for current in db.session.scalars(sa.select(Run).where(Run.photo_id == photo_id, Run.current)):
        forget_labels(current)
    stored = db.session.scalar(sa.delete(Photo).where(Photo.id == photo_id).returning(Photo.stored_bytes))
    if stored is None:  # SQLite: another delete won between the two statements
        db.session.rollback()
        raise NotFound(NOT_FOUND)
    count_created(user_id, -1, -stored)
    if trashed:
        count_trashed(user_id, -1)
    db.session.commit()
    storage.delete_folder(folder)


def delete_run(run: Run) -> None:
    """Delete one run of a photo (its detections, labels and annotated image), not the photo:
    when it was current, the photo's latest finished run becomes current. Raises OnlyRun for a
    photo's only run (delete the photo instead); NotFound when it is gone already."""
    photo_id, run_id = run.photo_id, run.id  # its own columns: the photo may be gone
    detach(run)
    if not lock_photos([photo_id]):
        db.session.rollback()
        raise NotFound(NOT_FOUND)
    run = db.session.scalar(sa.select(Run).where(Run.id == run_id).with_for_update())
    if run is None:
        db.session.rollback()
        raise NotFound(NOT_FOUND)
    annotated = [run.annotated_path or run.annotated_target, run.annotated_thumbnail_path, *view_files(run)]
    others = [r for r in run.photo.runs if r.id != run.id]
    if not others:
        db.session.rollback()
        raise OnlyRun("This is the photo's only run: delete the photo instead.")
    if run.current:
        forget_labels(run)
        make_current(latest_finished(others) or others[0])
    db.session.delete(run)
    db.session.commit()
    storage.delete(annotated)


def detach(run: Run) -> None:
    """Take the run, its photo and the photo's runs out of the session: they are read again (or
    deleted) under the photo's lock, and nothing stale of them is ever flushed."""
    photo = run.__dict__.get("photo")
    for obj in [run, photo, *(photo.__dict__.get("runs") or [] if photo is not None else [])]:
        if obj is not None and obj in db.session:
            db.session.expunge(obj)
