"""History at scale: analysis_label, user_label and user.photos (kept counts, backfilled from
the detections), and the (user, created_at, id) indexes that keyset pages walk.

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade():
    op.create_table(
        'analysis_label',
        sa.Column('analysis_id', sa.Integer(), nullable=False),
        sa.Column('label', sa.String(length=100), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.Column('created_at', UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(['analysis_id'], ['analysis.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('analysis_id', 'label'),
    )
    op.create_index('ix_analysis_label_user_label', 'analysis_label',
                    ['user_id', 'label', 'created_at', 'analysis_id'])
    op.create_table(
        'user_label',
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('label', sa.String(length=100), nullable=False),
        sa.Column('photos', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('user_id', 'label'),
    )
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('photos', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('analysis', schema=None) as batch_op:
        batch_op.drop_index('ix_analysis_user_created')
        batch_op.drop_index('ix_analysis_user_status')
        batch_op.create_index('ix_analysis_user_created', ['user_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_analysis_user_status', ['user_id', 'status', 'created_at', 'id'], unique=False)
    backfill()


def backfill():
    """The same counts `flask check-counts` recomputes: labels of done analyses at their threshold."""
    op.execute("""
        INSERT INTO analysis_label (analysis_id, label, user_id, count, created_at)
        SELECT a.id, d.label, a.user_id, COUNT(*), a.created_at
        FROM analysis a JOIN detection d ON d.analysis_id = a.id
        WHERE a.status = 'done' AND d.confidence >= a.conf
        GROUP BY a.id, d.label, a.user_id, a.created_at
    """)
    op.execute("""
        INSERT INTO user_label (user_id, label, photos)
        SELECT user_id, label, COUNT(*) FROM analysis_label GROUP BY user_id, label
    """)
    op.execute("""
        UPDATE "user" SET photos = (SELECT COUNT(*) FROM analysis a WHERE a.user_id = "user".id)
    """)


def downgrade():
    with op.batch_alter_table('analysis', schema=None) as batch_op:
        batch_op.drop_index('ix_analysis_user_status')
        batch_op.drop_index('ix_analysis_user_created')
        batch_op.create_index('ix_analysis_user_status', ['user_id', 'status'], unique=False)
        batch_op.create_index('ix_analysis_user_created', ['user_id', 'created_at'], unique=False)
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_column('photos')
    op.drop_table('user_label')
    op.drop_index('ix_analysis_label_user_label', table_name='analysis_label')
    op.drop_table('analysis_label')
