"""QTLs: each study's own limits, and the evaluation of each breach.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATUSES = "'open', 'evaluated', 'signed_off'"


def upgrade() -> None:
    op.create_table(
        "qtl_limits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.String(64), nullable=False),
        sa.Column("qtl_id", sa.String(16), nullable=False),
        sa.Column("expected_rate", sa.Float(), nullable=True),
        sa.Column("secondary_limit", sa.Float(), nullable=False),
        sa.Column("limit", sa.Float(), nullable=False),
        sa.Column("method", sa.String(32), nullable=True),
        sa.Column("rationale", sa.Text(), nullable=False),
        sa.Column("set_by", sa.String(64), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_qtl_limits")),
        sa.UniqueConstraint("study_id", "qtl_id", name=op.f("uq_qtl_limits_study_id_qtl_id")),
    )
    op.create_table(
        "qtl_breaches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.String(64), nullable=False),
        sa.Column("qtl_id", sa.String(16), nullable=False),
        sa.Column("first_cut", sa.Date(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("estimate", sa.Float(), nullable=False),
        sa.Column("lower", sa.Float(), nullable=True),
        sa.Column("upper", sa.Float(), nullable=True),
        sa.Column("limit", sa.Float(), nullable=False),
        sa.Column("secondary_limit", sa.Float(), nullable=True),
        sa.Column("probability_exceed", sa.Float(), nullable=True),
        sa.Column("systemic", sa.Boolean(), nullable=True),
        sa.Column("root_cause", sa.Text(), nullable=True),
        sa.Column("capa", sa.Text(), nullable=True),
        sa.Column("assessed_by", sa.String(64), nullable=True),
        sa.Column("assessed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("signed_off_by", sa.String(64), nullable=True),
        sa.Column("signed_off_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("opened_by", sa.String(64), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(f"status IN ({_STATUSES})", name=op.f("ck_qtl_breaches_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_qtl_breaches")),
        sa.UniqueConstraint("study_id", "qtl_id", "first_cut", name=op.f("uq_qtl_breaches_study_id_qtl_id")),
    )


def downgrade() -> None:
    op.drop_table("qtl_breaches")
    op.drop_table("qtl_limits")
