"""Analysis.stored_bytes and User.stored_bytes: the bytes a photo keeps on disk, for quotas.

Existing analyses are measured from their files under UPLOAD_DIR (0 for files not found there,
e.g. when the migration runs on a machine without the uploads); `flask check-counts --fix`
rebuilds the users' totals later if needed.

Revision ID: 0006
Revises: 0005
"""
import os

from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def _upload_dir():
    try:
        from flask import current_app

        return current_app.config.get("UPLOAD_DIR")
    except RuntimeError:  # alembic run without the app
        return os.environ.get("UPLOAD_DIR")


def _size(root, relative):
    if not root or not relative:
        return 0
    try:
        return os.path.getsize(os.path.join(root, relative))
    except OSError:
        return 0


def upgrade():
    with op.batch_alter_table('analysis', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stored_bytes', sa.BigInteger(), nullable=False, server_default='0'))
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stored_bytes', sa.BigInteger(), nullable=False, server_default='0'))
    bind = op.get_bind()
    root = _upload_dir()
    analysis = sa.table('analysis', sa.column('id', sa.Integer), sa.column('original_path', sa.String),
                        sa.column('thumbnail_path', sa.String), sa.column('stored_bytes', sa.BigInteger),
                        sa.column('user_id', sa.Integer))
    user = sa.table('user', sa.column('id', sa.Integer), sa.column('stored_bytes', sa.BigInteger))
    rows = bind.execute(sa.select(analysis.c.id, analysis.c.original_path, analysis.c.thumbnail_path)).all()
    sizes = [{"row_id": i, "size": _size(root, o) + _size(root, t)} for i, o, t in rows]
    if sizes and any(s["size"] for s in sizes):
        bind.execute(analysis.update().where(analysis.c.id == sa.bindparam("row_id"))
                     .values(stored_bytes=sa.bindparam("size")), sizes)
        total = (sa.select(sa.func.coalesce(sa.func.sum(analysis.c.stored_bytes), 0))
                 .where(analysis.c.user_id == user.c.id).scalar_subquery())
        bind.execute(user.update().values(stored_bytes=total))


def downgrade():
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_column('stored_bytes')
    with op.batch_alter_table('analysis', schema=None) as batch_op:
        batch_op.drop_column('stored_bytes')
