"""Storage: recording volumes, each segment's volume, and holds that protect recordings.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "volumes",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("first_seen_us", sa.Integer(), nullable=False),
        sa.Column("last_seen_us", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_volumes")),
    )
    op.add_column("segments", sa.Column("volume", sa.String(), nullable=True))
    op.create_index(op.f("ix_segments_volume_start_us"), "segments", ["volume", "start_us"])
    op.create_table(
        "holds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stream", sa.String(), nullable=True),
        sa.Column("start_us", sa.Integer(), nullable=False),
        sa.Column("end_us", sa.Integer(), nullable=False),
        sa.Column("until_us", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("created_at_us", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_holds")),
    )


def downgrade() -> None:
    op.drop_table("holds")
    op.drop_index(op.f("ix_segments_volume_start_us"), table_name="segments")
    op.drop_column("segments", "volume")
    op.drop_table("volumes")
