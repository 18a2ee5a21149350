"""``jwkit db``: database maintenance for the key service."""

from __future__ import annotations

import click


@click.group("db")
def db() -> None:
    """Key service database maintenance."""


@db.command("upgrade")
@click.option("--database-url", default=None, help="SQLAlchemy URL [default: from JWKIT_*].")
def upgrade(database_url: str | None) -> None:
    """Create or migrate the schema to the newest revision (the server also does this)."""
    from jwkit.service.settings import Settings
    from jwkit.service.store.db import Database

    settings = Settings(database_url=database_url) if database_url else Settings()
    if settings.is_sqlite and not settings.database_url:
        settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)  # as `jwkit serve` does
    database = Database(settings.resolved_database_url)
    try:
        database.migrate()
    finally:
        database.dispose()
    click.echo("database schema is up to date")
