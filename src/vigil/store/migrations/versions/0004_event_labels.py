"""Detection: the events table gains the object label, for `GET /events?label=`.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("events", sa.Column("label", sa.String(), nullable=True))
    # Rows stored before the column existed: the label is in their JSON already.
    op.execute(
        "UPDATE events SET label = json_extract(data, '$.label') "
        "WHERE json_valid(data) AND json_type(data, '$.label') = 'text'"
    )
    op.create_index(op.f("ix_events_label_at_us"), "events", ["label", "at_us"])


def downgrade() -> None:
    op.drop_index(op.f("ix_events_label_at_us"), table_name="events")
    op.drop_column("events", "label")
