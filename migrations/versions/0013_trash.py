"""The Trash: when a photo was moved there and with which delete, and how many each user has there.

Revision ID: 0013
Revises: 0012
"""
from alembic import op
import sqlalchemy as sa

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('photo') as batch:
        batch.add_column(sa.Column('trashed_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('trash_batch', sa.String(length=32), nullable=True))
        batch.create_index('ix_photo_user_trashed', ['user_id', 'trashed_at'])
        batch.create_index('ix_photo_trashed', ['trashed_at'])
    with op.batch_alter_table('user') as batch:
        batch.add_column(sa.Column('trashed', sa.Integer(), server_default='0', nullable=False))


def downgrade():
    with op.batch_alter_table('user') as batch:
        batch.drop_column('trashed')
    with op.batch_alter_table('photo') as batch:
        batch.drop_index('ix_photo_trashed')
        batch.drop_index('ix_photo_user_trashed')
        batch.drop_column('trash_batch')
        batch.drop_column('trashed_at')
