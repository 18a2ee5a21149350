"""The key service's state as maintenance commands find it: refuse, never create.

``jwkit audit verify``, ``jwkit keys rewrap`` and ``jwkit admin reset-credentials`` work on the
state a ``jwkit serve`` left behind. Run in the wrong folder they must say so, not create an
empty ``./.jwkit`` and fail on a missing table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._output import fail_input

if TYPE_CHECKING:
    from jwkit.service.settings import Settings
    from jwkit.service.store.db import Database

_WHERE = (
    "run this command in the folder where `jwkit serve` keeps its state, "
    "or set JWKIT_HOME (or pass --database-url)"
)


def load_settings(database_url: str | None = None) -> Settings:
    """The service settings from ``JWKIT_*`` (and ``--database-url``), or exit 3 in words."""
    from pydantic import ValidationError

    from jwkit.service.settings import Settings

    try:
        return Settings(database_url=database_url) if database_url else Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "JWKIT_" + "_".join(str(p) for p in first.get("loc", ())).upper()
        fail_input(f"{name} is not valid: {first['msg']}")


def open_existing(settings: Settings) -> Database:
    """The service database, only if a service created it; exit 3 with a hint otherwise."""
    from sqlalchemy import inspect
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from jwkit.service.store.db import Database

    url = settings.resolved_database_url
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database or ""
        if path in ("", ":memory:") or not _exists(path):
            fail_input(f"no jwkit service state: {path or url} does not exist; {_WHERE}")
    where = parsed.render_as_string(hide_password=True)
    try:
        database = Database(url)
    except SQLAlchemyError as exc:
        fail_input(f"cannot open the database {where}: {_first_line(exc)}")
    try:
        tables = set(inspect(database.engine).get_table_names())
    except SQLAlchemyError as exc:
        database.dispose()
        fail_input(f"cannot open the database {where}: {_first_line(exc)}")
    if "alembic_version" not in tables or "audit_events" not in tables:
        database.dispose()
        fail_input(f"{where} holds no jwkit service database; {_WHERE}")
    return database


def _exists(path: str) -> bool:
    from pathlib import Path

    return Path(path).is_file()


def _first_line(exc: Exception) -> str:
    lines = str(exc).splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"
