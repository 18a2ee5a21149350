"""``jwkit audit``: check the key service's hash-chained audit log."""

from __future__ import annotations

import sys

import click

from ._output import EXIT_FAILED


@click.group("audit")
def audit() -> None:
    """The key service's audit log."""


@audit.command("verify")
@click.option("--database-url", default=None, help="SQLAlchemy URL [default: from JWKIT_*].")
def verify(database_url: str | None) -> None:
    """Recompute the hash chain; exit 1 and name the first bad entry if it was tampered with."""
    from jwkit.service.domain.audit import verify_chain

    from ._state import load_settings, open_existing

    database = open_existing(load_settings(database_url))
    try:
        with database.session() as session:
            report = verify_chain(session)
    finally:
        database.dispose()
    if report.ok:
        click.echo(f"audit log intact: {report.count} entries")
        return
    click.echo(
        f"audit log BROKEN at entry {report.first_bad_seq}: {report.reason} "
        f"({report.count} entries verified before it)",
        err=True,
    )
    sys.exit(EXIT_FAILED)
