"""Date taken, camera and location of each photo, and the rendition pages show.

A photo gets `taken_at` (as the camera wrote it, or its upload time), `taken_offset`,
`taken_source`, `camera_make`, `camera_model`, `latitude`, `longitude` and `display_path`; a run
and a label row get `taken_at` (the gallery's order by date taken, like `created_at` for upload
time), with the indexes that order needs. Upgrade reads each stored original's EXIF for them
(where the file is gone or says nothing, the upload time stands). Originals stored before now
were kept upright already, so none needs a rendition. Downgrade drops them all; a photo
uploaded since with a rendition has the rendition as its original again (what the old schema
kept), the original itself staying in its folder.

Revision ID: 0011
Revises: 0010
"""
import logging
from pathlib import Path

from alembic import op
import sqlalchemy as sa
from flask import current_app

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

logger = logging.getLogger("alembic.runtime.migration")
PHOTO = sa.table("photo", sa.column("id", sa.Integer), sa.column("original_path", sa.String),
                 sa.column("created_at", sa.DateTime(timezone=True)), sa.column("taken_at", sa.DateTime),
                 sa.column("taken_offset", sa.Integer), sa.column("taken_source", sa.String),
                 sa.column("camera_make", sa.String), sa.column("camera_model", sa.String),
                 sa.column("latitude", sa.Float), sa.column("longitude", sa.Float))
BATCH = 500


def upgrade():
    with op.batch_alter_table('photo', schema=None) as batch_op:
        batch_op.add_column(sa.Column('display_path', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('taken_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('taken_offset', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('taken_source', sa.String(length=8), server_default='upload', nullable=False))
        batch_op.add_column(sa.Column('camera_make', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('camera_model', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('latitude', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('longitude', sa.Float(), nullable=True))
    with op.batch_alter_table('analysis', schema=None) as batch_op:
        batch_op.add_column(sa.Column('taken_at', sa.DateTime(), nullable=True))
    with op.batch_alter_table('analysis_label', schema=None) as batch_op:
        batch_op.add_column(sa.Column('taken_at', sa.DateTime(), nullable=True))

    _read_photos(op.get_bind())
    op.execute("UPDATE analysis SET taken_at = (SELECT photo.taken_at FROM photo WHERE photo.id = analysis.photo_id)")
    op.execute("UPDATE analysis_label SET taken_at = "
               "(SELECT analysis.taken_at FROM analysis WHERE analysis.id = analysis_label.analysis_id)")

    with op.batch_alter_table('photo', schema=None) as batch_op:
        batch_op.alter_column('taken_at', existing_type=sa.DateTime(), nullable=False)
    with op.batch_alter_table('analysis', schema=None) as batch_op:
        batch_op.alter_column('taken_at', existing_type=sa.DateTime(), nullable=False)
        batch_op.create_index('ix_analysis_user_shown_taken', ['user_id', 'shown', 'taken_at', 'id'], unique=False)
        batch_op.create_index('ix_analysis_user_status_taken', ['user_id', 'status', 'shown', 'taken_at', 'id'],
                              unique=False)
    with op.batch_alter_table('analysis_label', schema=None) as batch_op:
        batch_op.alter_column('taken_at', existing_type=sa.DateTime(), nullable=False)
        batch_op.create_index('ix_analysis_label_user_label_taken', ['user_id', 'label', 'taken_at', 'analysis_id'],
                              unique=False)


def _read_photos(connection) -> None:
    """Each photo's date taken, camera and location from its stored original; its upload time
    (UTC, as written) where the file says no date."""
    from webapp.vision.images import ImageRejected, read_header  # the app's own reading of EXIF

    root = Path(current_app.config["UPLOAD_DIR"])
    last = 0
    while True:
        rows = connection.execute(sa.select(PHOTO.c.id, PHOTO.c.original_path, PHOTO.c.created_at)
                                  .where(PHOTO.c.id > last).order_by(PHOTO.c.id).limit(BATCH)).all()
        if not rows:
            return
        for ident, relative, created in rows:
            last = ident
            values = {"taken_at": _naive_utc(created), "taken_offset": 0, "taken_source": "upload"}
            try:
                facts = read_header((root / relative).read_bytes()).facts
            except (OSError, ImageRejected):
                logger.warning("Photo %s: its original %s could not be read; its date taken is its upload time",
                               ident, relative)
                facts = None
            if facts is not None:
                values.update(camera_make=facts.camera_make, camera_model=facts.camera_model,
                              latitude=facts.latitude, longitude=facts.longitude)
                if facts.taken_at is not None:
                    values.update(taken_at=facts.taken_at, taken_offset=facts.taken_offset, taken_source="exif")
            connection.execute(sa.update(PHOTO).where(PHOTO.c.id == ident).values(**values))


def _naive_utc(moment):
    from datetime import timezone

    if isinstance(moment, str):  # SQLite hands back text
        from datetime import datetime

        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


def downgrade():
    op.execute("UPDATE photo SET original_path = display_path WHERE display_path IS NOT NULL")
    with op.batch_alter_table('analysis_label', schema=None) as batch_op:
        batch_op.drop_index('ix_analysis_label_user_label_taken')
        batch_op.drop_column('taken_at')
    with op.batch_alter_table('analysis', schema=None) as batch_op:
        batch_op.drop_index('ix_analysis_user_status_taken')
        batch_op.drop_index('ix_analysis_user_shown_taken')
        batch_op.drop_column('taken_at')
    with op.batch_alter_table('photo', schema=None) as batch_op:
        for column in ('longitude', 'latitude', 'camera_model', 'camera_make', 'taken_source', 'taken_offset',
                       'taken_at', 'display_path'):
            batch_op.drop_column(column)
