"""Accounts for real: disabled accounts, invitations, and "Download everything" archives.

Revision ID: 0014
Revises: 0013
"""
from alembic import op
import sqlalchemy as sa

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    # SQLite: the table rebuilt with AUTOINCREMENT, so that a deleted account's id is never reused
    # (a login carries the id); PostgreSQL's sequences never reuse one.
    sqlite = op.get_bind().dialect.name == 'sqlite'
    with op.batch_alter_table('user', **({'recreate': 'always', 'table_kwargs': {'sqlite_autoincrement': True}}
                                         if sqlite else {})) as batch:
        batch.add_column(sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('links_after', sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        'invite',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('nonce', sa.String(length=32), nullable=False),
        sa.Column('email', sa.String(length=254), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('nonce'),
    )
    op.create_index('ix_invite_email', 'invite', ['email'])
    op.create_index('ix_invite_user_id', 'invite', ['user_id'])
    op.create_table(
        'takeout',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('public_id', sa.String(length=32), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('done', sa.Integer(), nullable=False),
        sa.Column('total', sa.Integer(), nullable=False),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('path', sa.String(length=500), nullable=True),
        sa.Column('error', sa.String(length=500), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('public_id'),
    )
    op.create_index('ix_takeout_user_id', 'takeout', ['user_id'])


def downgrade():
    op.drop_index('ix_takeout_user_id', table_name='takeout')
    op.drop_table('takeout')
    op.drop_index('ix_invite_user_id', table_name='invite')
    op.drop_index('ix_invite_email', table_name='invite')
    op.drop_table('invite')
    with op.batch_alter_table('user') as batch:
        batch.drop_column('links_after')
        batch.drop_column('disabled_at')
