"""SQLite through SQLAlchemy 2 and Alembic: the only writer of Vigil's database."""
