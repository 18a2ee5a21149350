"""``jwkit keys rewrap``: move every stored private key to a new master key."""

from __future__ import annotations

import os
import secrets
import sys

import click

from ._output import EXIT_FAILED, fail_input
from .keys import keys


@keys.command("rewrap")
@click.option(
    "--new-key",
    default=None,
    envvar="JWKIT_NEW_MASTER_KEY",
    help="The new master key (64 hex digits or base64url); env JWKIT_NEW_MASTER_KEY.",
)
@click.option("--generate", is_flag=True, help="Generate the new master key.")
@click.option("--database-url", default=None, help="SQLAlchemy URL [default: from JWKIT_*].")
def rewrap(new_key: str | None, generate: bool, database_url: str | None) -> None:
    """Re-seal every key's data key under a new master key, in one transaction.

    The current master key comes from JWKIT_MASTER_KEY or $JWKIT_HOME/master.key. When the
    key file is in use, it is replaced after the commit (the new key is first written to
    master.key.new). Otherwise set JWKIT_MASTER_KEY to the new key and restart every replica.
    """
    from sqlalchemy import select

    from jwkit.service.store.models import Key
    from jwkit.service.vault import (
        MASTER_KEY_FILE,
        MasterKeyError,
        SealedKey,
        Vault,
        VaultError,
        load_master_key,
        parse_master_key,
    )

    if generate == (new_key is not None):
        fail_input("give exactly one of --new-key or --generate")
    from ._state import load_settings, open_existing

    settings = load_settings(database_url)
    database = open_existing(settings)  # before anything is created or read
    env_key = settings.master_key.get_secret_value() if settings.master_key else None
    key_file = settings.home / MASTER_KEY_FILE
    if env_key is None and not key_file.is_file():
        database.dispose()
        fail_input(f"no master key: {key_file} does not exist and JWKIT_MASTER_KEY is not set")
    try:
        old = Vault(load_master_key(env_key, settings.home))
        raw = secrets.token_bytes(32) if generate else parse_master_key(new_key or "")
    except MasterKeyError as exc:
        database.dispose()
        fail_input(str(exc))
    new = Vault(raw)
    staged = settings.home / (MASTER_KEY_FILE + ".new")
    if env_key is None:
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(raw.hex() + "\n")
    moved = 0
    try:
        with database.session() as session, session.begin():
            for row in session.execute(select(Key).with_for_update()).scalars():
                if row.kek_id == new.kek_id or (row.backend or "local") != "local":
                    continue  # already moved, or held in a key backend (nothing sealed)
                sealed = SealedKey(row.wrapped_dek, row.ciphertext, row.kek_id)
                try:
                    fresh = old.rewrap(sealed, new, project_id=row.project_id, kid=row.kid)
                except VaultError:
                    click.echo(
                        f"error: key {row.kid} cannot be opened with the current "
                        "master key; nothing was changed",
                        err=True,
                    )
                    raise
                row.wrapped_dek, row.kek_id = fresh.wrapped_dek, fresh.kek_id
                moved += 1
    except VaultError:
        if env_key is None:
            staged.unlink(missing_ok=True)
        sys.exit(EXIT_FAILED)
    finally:
        database.dispose()
    if env_key is None:
        os.replace(staged, key_file)
        click.echo(f"rewrapped {moved} keys; {key_file} now holds the new master key")
    else:
        click.echo(f"rewrapped {moved} keys; set JWKIT_MASTER_KEY to the new key and restart")
        if generate:
            click.echo(f"new master key (shown once): {raw.hex()}")
