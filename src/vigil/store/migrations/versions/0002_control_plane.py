"""Control plane: API tokens, stored events, streams changed through the API.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("token_hash", sa.String(), nullable=False),
        sa.Column("created_at_us", sa.Integer(), nullable=False),
        sa.Column("revoked_at_us", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("name", name=op.f("uq_api_tokens_name")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
        sa.CheckConstraint(
            "role IN ('viewer', 'operator', 'admin')", name=op.f("ck_api_tokens_role")
        ),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at_us", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("stream", sa.String(), nullable=True),
        sa.Column("data", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_index(op.f("ix_events_at_us"), "events", ["at_us"])
    op.create_index(op.f("ix_events_type_at_us"), "events", ["type", "at_us"])
    op.create_index(op.f("ix_events_stream_at_us"), "events", ["stream", "at_us"])
    op.create_table(
        "stream_overlay",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("config", sa.String(), nullable=True),
        sa.Column("updated_at_us", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_stream_overlay")),
    )


def downgrade() -> None:
    op.drop_table("stream_overlay")
    op.drop_index(op.f("ix_events_stream_at_us"), table_name="events")
    op.drop_index(op.f("ix_events_type_at_us"), table_name="events")
    op.drop_index(op.f("ix_events_at_us"), table_name="events")
    op.drop_table("events")
    op.drop_table("api_tokens")
