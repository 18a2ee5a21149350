"""``jwkit admin keys import`` and ``jwkit admin foreign-keys``: moving onto jwkit.

The private key is read from a file or standard input (``-``), never from the command line,
and never printed; an encrypted PEM's passphrase comes from ``JWKIT_KEY_PASSPHRASE`` or a
hidden prompt.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import click

from ._output import fail_input, parse_duration, print_json, read_file
from .admin import _Api, admin, keys, pass_api

_FOREIGN_COLS = ["kid", "until", "published", "source", "thumbprint"]


def _read_source(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    return read_file(path)


@keys.command("import")
@click.argument("project_id")
@click.argument("key_file", metavar="KEY_FILE")
@click.option("--kid", default=None, help="Key ID [default: the JWK's kid or its thumbprint].")
@click.option(
    "--passphrase-prompt",
    is_flag=True,
    help="Ask for the passphrase of an encrypted PEM [or set JWKIT_KEY_PASSPHRASE].",
)
@pass_api
def keys_import(
    api: _Api, project_id: str, key_file: str, kid: str | None, passphrase_prompt: bool
) -> None:
    """Import a private key (PEM, or a JWK in JSON) as the project's next key.

    KEY_FILE is a path, or - for standard input. The key is sealed like a generated key,
    pre-published, and promoted by the normal rotation; it is never printed.
    """
    text = _read_source(key_file).strip()
    if not text:
        fail_input("the key file is empty")
    body: dict[str, Any] = {}
    if text.startswith("{"):
        try:
            body["jwk"] = json.loads(text)
        except ValueError:
            fail_input("the key file starts with { but is not valid JSON")
    else:
        body["pem"] = text
        passphrase = os.environ.get("JWKIT_KEY_PASSPHRASE")
        if passphrase_prompt:
            passphrase = click.prompt("Passphrase", hide_input=True, err=True)
        if passphrase:
            body["passphrase"] = passphrase
    if kid:
        body["kid"] = kid
    data = api.call("POST", f"/projects/{project_id}/keys/import", body)
    if api.as_json:
        print_json(data)
    else:
        click.echo(f"{data['state']} key {data['kid']} imported at {data['created_at']}")


@admin.group("foreign-keys")
def foreign_keys() -> None:
    """Another issuer's public keys, published in a project's JWKS for a stated period."""


@foreign_keys.command("list")
@click.argument("project_id")
@pass_api
def foreign_list(api: _Api, project_id: str) -> None:
    """List the foreign keys of a project (published or past their end)."""
    data = api.call("GET", f"/projects/{project_id}/foreign-keys")
    api.show(data, _FOREIGN_COLS, "foreign_keys")


@foreign_keys.command("add")
@click.argument("project_id")
@click.option("--jwks-file", default=None, help="A JWK Set file, or - for standard input.")
@click.option("--url", default=None, help="A JWKS URL, fetched once now (https).")
@click.option("--until", "until", default=None, help="End, RFC 3339 (2027-01-31T00:00:00Z).")
@click.option("--for", "period", default=None, help="Or a period from now: 30d, 12h.")
@pass_api
def foreign_add(
    api: _Api,
    project_id: str,
    jwks_file: str | None,
    url: str | None,
    until: str | None,
    period: str | None,
) -> None:
    """Publish another issuer's public keys in the project's JWKS until an end time."""
    if (jwks_file is None) == (url is None):
        fail_input("give exactly one of --jwks-file or --url")
    if (until is None) == (period is None):
        fail_input("give exactly one of --until or --for")
    if period is not None:
        end = datetime.now(UTC) + timedelta(seconds=parse_duration(period))
        until = end.strftime("%Y-%m-%dT%H:%M:%SZ")
    body: dict[str, Any] = {"until": until}
    if url is not None:
        body["url"] = url
    else:
        assert jwks_file is not None
        try:
            body["jwks"] = json.loads(_read_source(jwks_file))
        except ValueError:
            fail_input(f"{jwks_file} is not valid JSON")
    data = api.call("POST", f"/projects/{project_id}/foreign-keys", body)
    api.show(data, _FOREIGN_COLS, "foreign_keys")
    if not api.as_json:
        for line in data.get("skipped") or []:
            click.echo(f"skipped {line}", err=True)


@foreign_keys.command("remove")
@click.argument("project_id")
@click.argument("kid")
@pass_api
def foreign_remove(api: _Api, project_id: str, kid: str) -> None:
    """Take a foreign key out of the JWKS now. A kid starting with "-" goes after "--"."""
    api.call("DELETE", f"/projects/{project_id}/foreign-keys/{quote(kid, safe='')}")
    if not api.as_json:
        click.echo(f"foreign key {kid} removed")
