"""The message and correlation store: SQLAlchemy 2 tables, migrations and repository functions."""
