"""Persistence: SQLAlchemy models, the engine/session factory and the shipped Alembic migrations."""
