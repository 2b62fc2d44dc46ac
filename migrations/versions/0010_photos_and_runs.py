"""Photos and runs: what belongs to an uploaded photo moves to `photo`; an analysis becomes one
run of the model on it (a photo may have several). Each existing analysis becomes a photo (whose
public id is the analysis's, so nothing needs a lookup table) with that analysis as its one,
shown run; its files stay where they are.

Downgrade keeps each photo's shown run as the analysis it was (its photo's fields copied back)
and deletes the other runs with their detections and share links: the old schema has one
analysis per photo. Their annotated images stay on disk.

Revision ID: 0010
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

PHOTO_COLUMNS = ("original_filename", "original_path", "thumbnail_path", "width", "height", "stored_bytes",
                 "sha256")


def upgrade():
    op.create_table(
        'photo',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('public_id', sa.String(length=32), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('original_filename', sa.String(length=255), nullable=False),
        sa.Column('original_path', sa.String(length=500), nullable=False),
        sa.Column('thumbnail_path', sa.String(length=500), nullable=True),
        sa.Column('width', sa.Integer(), nullable=False),
        sa.Column('height', sa.Integer(), nullable=False),
        sa.Column('stored_bytes', sa.BigInteger(), server_default='0', nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('public_id'),
    )
    with op.batch_alter_table('photo', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_photo_user_id'), ['user_id'], unique=False)
        batch_op.create_index('ix_photo_user_sha256', ['user_id', 'sha256'], unique=False)

    with op.batch_alter_table('analysis', schema=None) as batch_op:
        batch_op.add_column(sa.Column('photo_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('shown', sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.add_column(sa.Column('queued_at', sa.DateTime(timezone=True), nullable=True))

    op.execute("""
        INSERT INTO photo (public_id, user_id, original_filename, original_path, thumbnail_path, width, height,
                           stored_bytes, sha256, created_at)
        SELECT public_id, user_id, original_filename, original_path, thumbnail_path, width, height,
               stored_bytes, sha256, created_at
        FROM analysis ORDER BY id
    """)
    op.execute("""
        UPDATE analysis SET photo_id = (SELECT photo.id FROM photo WHERE photo.public_id = analysis.public_id),
                            queued_at = created_at
    """)

    with op.batch_alter_table('analysis', schema=None) as batch_op:
        batch_op.alter_column('photo_id', existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column('queued_at', existing_type=sa.DateTime(timezone=True), nullable=False)
        batch_op.create_foreign_key('fk_analysis_photo_id', 'photo', ['photo_id'], ['id'], ondelete='CASCADE')
        batch_op.create_index(batch_op.f('ix_analysis_photo_id'), ['photo_id'], unique=False)
        batch_op.drop_index('ix_analysis_user_created')
        batch_op.create_index('ix_analysis_user_shown_created', ['user_id', 'shown', 'created_at', 'id'], unique=False)
        batch_op.drop_index(batch_op.f('ix_analysis_sha256'))
        for column in PHOTO_COLUMNS:
            batch_op.drop_column(column)


def downgrade():
    # The old schema has one analysis per photo: the runs a photo does not show go, with what
    # hangs off them (foreign keys are off on SQLite while migrating: no cascade to rely on).
    for table in ('detection', 'analysis_label', 'share_link'):
        op.execute(f"DELETE FROM {table} WHERE analysis_id IN (SELECT id FROM analysis WHERE NOT shown)")
    op.execute("DELETE FROM analysis WHERE NOT shown")

    with op.batch_alter_table('analysis', schema=None) as batch_op:
        batch_op.add_column(sa.Column('original_filename', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('original_path', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('thumbnail_path', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('width', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('height', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('stored_bytes', sa.BigInteger(), server_default='0', nullable=True))
        batch_op.add_column(sa.Column('sha256', sa.String(length=64), nullable=True))
    assignments = ", ".join(
        f"{column} = (SELECT photo.{column} FROM photo WHERE photo.id = analysis.photo_id)" for column in PHOTO_COLUMNS)
    op.execute(f"UPDATE analysis SET {assignments}")

    with op.batch_alter_table('analysis', schema=None) as batch_op:
        for column, kind in (('original_filename', sa.String(length=255)), ('original_path', sa.String(length=500)),
                             ('width', sa.Integer()), ('height', sa.Integer()), ('stored_bytes', sa.BigInteger()),
                             ('sha256', sa.String(length=64))):
            batch_op.alter_column(column, existing_type=kind, nullable=False)
        batch_op.create_index(batch_op.f('ix_analysis_sha256'), ['sha256'], unique=False)
        batch_op.drop_index('ix_analysis_user_shown_created')
        batch_op.create_index('ix_analysis_user_created', ['user_id', 'created_at', 'id'], unique=False)
        batch_op.drop_index(batch_op.f('ix_analysis_photo_id'))
        batch_op.drop_constraint('fk_analysis_photo_id', type_='foreignkey')
        batch_op.drop_column('queued_at')
        batch_op.drop_column('shown')
        batch_op.drop_column('photo_id')

    with op.batch_alter_table('photo', schema=None) as batch_op:
        batch_op.drop_index('ix_photo_user_sha256')
        batch_op.drop_index(batch_op.f('ix_photo_user_id'))
    op.drop_table('photo')
