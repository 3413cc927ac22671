"""Initial schema: recorded segments and recording gaps.

Revision ID: 0001
Revises:
Create Date: 2025-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "segments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stream", sa.String(), nullable=False),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("start_us", sa.Integer(), nullable=False),
        sa.Column("end_us", sa.Integer(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=True),
        sa.Column("codec", sa.String(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("created_at_us", sa.Integer(), nullable=False),
        sa.Column("closed_at_us", sa.Integer(), nullable=True),
        sa.Column("note", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
        sa.UniqueConstraint("path", name=op.f("uq_segments_path")),
        sa.CheckConstraint(
            "status IN ('open', 'complete', 'repaired', 'missing')",
            name=op.f("ck_segments_status"),
        ),
    )
    op.create_index(op.f("ix_segments_stream_start_us"), "segments", ["stream", "start_us"])
    op.create_index(op.f("ix_segments_status"), "segments", ["status"])
    op.create_table(
        "gaps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stream", sa.String(), nullable=False),
        sa.Column("start_us", sa.Integer(), nullable=False),
        sa.Column("end_us", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gaps")),
    )
    op.create_index(op.f("ix_gaps_stream_start_us"), "gaps", ["stream", "start_us"])


def downgrade() -> None:
    op.drop_index(op.f("ix_gaps_stream_start_us"), table_name="gaps")
    op.drop_table("gaps")
    op.drop_index(op.f("ix_segments_status"), table_name="segments")
    op.drop_index(op.f("ix_segments_stream_start_us"), table_name="segments")
    op.drop_table("segments")
