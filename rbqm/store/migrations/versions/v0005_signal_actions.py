"""Signal actions: the actions linked to a signal (what, owner, due date, status, outcome, planned cut).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATUSES = "'planned', 'in_progress', 'done', 'cancelled'"


def upgrade() -> None:
    op.create_table(
        "signal_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.String(64), nullable=False),
        sa.Column("signal_id", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("planned_cut", sa.Date(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(f"status IN ({_STATUSES})", name=op.f("ck_signal_actions_status")),
        sa.ForeignKeyConstraint(["study_id", "signal_id"], ["signals.study_id", "signals.signal_id"],
                                name="fk_signal_actions_signal"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signal_actions")),
    )
    op.create_index("ix_signal_actions_signal", "signal_actions", ["study_id", "signal_id"])


def downgrade() -> None:
    op.drop_index("ix_signal_actions_signal", table_name="signal_actions")
    op.drop_table("signal_actions")
