"""``jwkit admin``: drive a running key service through its admin API.

Human tables by default, ``--json`` for scripts. ``--url`` / ``--token`` also come from
``JWKIT_ADMIN_URL`` / ``JWKIT_ADMIN_TOKEN``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ._output import EXIT_FAILED, fail_input, parse_duration, print_json

# The service's messages name the API's JSON fields; a CLI user needs the flags instead.
_API_WORDS = (
    ("send confirm_invalidate=true to proceed", "pass --confirm-invalidate to proceed"),
    ("use emergency=true", "pass --emergency"),
    ("create one with mode=next first", "create one with `jwkit admin keys generate` first"),
)
# What to do next, for refusals whose message does not say it.
_CLI_HINTS = {
    "key_still_in_use": "wait until then, or pass --emergency to break those tokens now",
    "rotation_too_early": "wait until then, or pass --emergency to rotate now",
    "passphrase_required": "set JWKIT_KEY_PASSPHRASE or pass --passphrase-prompt",
}


class _Api:
    def __init__(self, url: str, token: str | None, as_json: bool) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.as_json = as_json

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        import httpx

        if not self.token:
            fail_input(
                "no admin token: pass --token or set JWKIT_ADMIN_TOKEN (printed by the "
                "first `jwkit serve`; lost it? `jwkit admin reset-credentials`)"
            )

        try:
            response = httpx.request(
                method,
                f"{self.url}/api/v1{path}",
                json=body,
                timeout=30,
                headers={"Authorization": f"Bearer {self.token}"},
            )
        except httpx.HTTPError as exc:
            click.echo(f"error: cannot reach {self.url}: {exc}", err=True)
            sys.exit(EXIT_FAILED)
        if response.status_code == 204:
            return None
        try:
            data = response.json()
        except ValueError:
            data = {"error": "bad_response", "message": response.text[:200]}
        if response.status_code >= 400:
            if self.as_json:
                print_json(data)
            else:
                click.echo(_describe(response.status_code, data), err=True)
            sys.exit(EXIT_FAILED)
        return data

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    def show(self, data: Any, columns: list[str], rows_key: str | None = None) -> None:
        if self.as_json:
            print_json(data)
            return
        rows = data[rows_key] if rows_key else [data]
        _table(rows, columns)


def _describe(status: int, data: Any) -> str:
    """One line for a refusal: the service's message, each field's plain message once, and
    what to type next."""
    if not isinstance(data, dict):
        return f"error {status}"
    code = data.get("error")
    parts = [str(data.get("message") or "")]
    for item in data.get("detail") or []:
        msg = item.get("msg") if isinstance(item, dict) else None
        if msg and all(msg not in p for p in parts):
            parts.append(str(msg))
    text = "; ".join(p for p in parts if p)
    for api_words, cli_words in _API_WORDS:
        text = text.replace(api_words, cli_words)
    if data.get("earliest_safe_at"):
        text += f" (safe from {data['earliest_safe_at']})"
    hint = _CLI_HINTS.get(str(code))
    if hint:
        text += f": {hint}"
    return f"error {status} {code}: {text}"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


pass_api = click.make_pass_decorator(_Api)


def _seconds(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """Seconds as ``900``, ``90s``, ``15m``, ``2h`` or ``1d`` (as ``jwkit token sign``)."""
    return None if value is None else parse_duration(value)


@click.group("admin")
@click.option(
    "--url",
    envvar="JWKIT_ADMIN_URL",
    default="http://127.0.0.1:8000",
    show_default=True,
    help="Base URL of the key service [env: JWKIT_ADMIN_URL].",
)
@click.option(
    "--token",
    envvar="JWKIT_ADMIN_TOKEN",
    default=None,
    help="Admin API token [env: JWKIT_ADMIN_TOKEN].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON responses.")
@click.pass_context
def admin(ctx: click.Context, url: str, token: str | None, as_json: bool) -> None:
    """Manage projects, keys, tokens and clients on a running key service.

    \b
    Environment:
      JWKIT_ADMIN_URL    the service's base URL (as --url)
      JWKIT_ADMIN_TOKEN  the admin API token (as --token), printed once by the
                         first `jwkit serve`; `jwkit admin reset-credentials`
                         makes a new one if it was lost
    """
    ctx.obj = _Api(url, token, as_json)


_PROJECT_COLS = ["id", "name", "algorithm", "issuer", "rotation_days"]
_KEY_COLS = ["kid", "alg", "state", "created_at", "activated_at", "retires_at", "backend"]


@admin.group("projects")
def projects() -> None:
    """Projects (tenants)."""


@projects.command("create")
@click.argument("name")
@click.option("--algorithm", default=None, help="ES256 (default), RS256, PS256, EdDSA, HS256…")
@click.option("--audience", default=None, help="The aud of its tokens [default: the project id].")
@click.option("--token-ttl", callback=_seconds, default=None, help="Token lifetime: 900, 15m, 2h.")
@click.option("--max-token-ttl", callback=_seconds, default=None, help="Longest lifetime: 1d.")
@click.option("--jwks-max-age", callback=_seconds, default=None, help="JWKS cache age: 300, 5m.")
@click.option("--rotation-days", type=int, default=None, help="Rotate automatically every N days.")
@click.option(
    "--token-status/--no-token-status",
    default=None,
    help="Tokens carry a status-list claim, so they can be revoked (default: on).",
)
@pass_api
def projects_create(api: _Api, /, name: str, **options: Any) -> None:
    """Create a project (with an active and a pre-published next key)."""
    body = {"name": name, **{k: v for k, v in options.items() if v is not None}}
    data = api.call("POST", "/projects", body)
    api.show(data, [*_PROJECT_COLS, "active_kid"])
    if not api.as_json and data.get("secret_jwks"):
        _show_secret(
            data["secret_jwks"],
            "the active and the next key (a JWK Set)",
            "Save it as secret_jwks.json on every verifier",
        )


def _show_secret(value: dict[str, Any], what: str, where: str) -> None:
    """An HS* secret, shown in this one answer only: JSON on stdout, the advice on stderr."""
    click.echo(f"\nShared secret, shown once; store it now: {what}.", err=True)
    click.echo(
        f"{where} (Verifier.from_jwk_file reads it) and in your secret manager; "
        "anyone who holds it can also sign tokens.",
        err=True,
    )
    click.echo(json.dumps(value, indent=2))


def _warn_no_next_secret(key_list: list[dict[str, Any]]) -> None:
    """An HS* project rotates only to a next secret an admin generated and handed out."""
    published = [k for k in key_list if k["state"] in ("next", "active", "retiring")]
    if not published or not all(str(k["alg"]).startswith("HS") for k in published):
        return
    if any(k["state"] == "next" for k in published):
        return
    active = next((k for k in published if k["state"] == "active"), None)
    due = f" (rotation due {active['retires_at']})" if active and active.get("retires_at") else ""
    click.echo(
        f"warning: this shared-secret project has no pre-shared next key{due}. Run "
        "`jwkit admin keys generate PROJECT`, give the secret it shows to every "
        "verifier, then rotate; until then the current secret stays active.",
        err=True,
    )


@projects.command("list")
@pass_api
def projects_list(api: _Api) -> None:
    """List every project."""
    api.show(api.call("GET", "/projects"), _PROJECT_COLS, "projects")


@projects.command("show")
@click.argument("project_id")
@pass_api
def projects_show(api: _Api, project_id: str) -> None:
    """Show one project's settings, issuer and URLs."""
    data = api.call("GET", f"/projects/{project_id}")
    if api.as_json:
        print_json(data)
    else:
        for k, v in data.items():
            click.echo(f"{k:15} {_cell(v)}")


@admin.group("keys")
def keys() -> None:
    """A project's signing keys."""


@keys.command("list")
@click.argument("project_id")
@pass_api
def keys_list(api: _Api, project_id: str) -> None:
    """List a project's keys with their state and schedule."""
    data = api.call("GET", f"/projects/{project_id}/keys")
    api.show(data, _KEY_COLS, "keys")
    if not api.as_json:
        _warn_no_next_secret(data["keys"])


@keys.command("generate")
@click.argument("project_id")
@click.option(
    "--mode",
    type=click.Choice(["next", "replace"]),
    default="next",
    show_default=True,
    help="next: pre-publish a key to rotate to; replace: a new active key now.",
)
@click.option("--alg", default=None, help="Algorithm [default: the project's].")
@click.option(
    "--replace-next",
    is_flag=True,
    help="With --mode next: revoke the existing next key (it never signed).",
)
@click.option(
    "--confirm-invalidate",
    is_flag=True,
    help="With --mode replace: accept that tokens signed by the old key stop working.",
)
@pass_api
def keys_generate(
    api: _Api,
    project_id: str,
    mode: str,
    alg: str | None,
    replace_next: bool,
    confirm_invalidate: bool,
) -> None:
    """Create a key: a next key to rotate to (default), or a replacement active key."""
    if mode == "next" and not replace_next:
        current = [
            k for k in api.get(f"/projects/{project_id}/keys")["keys"] if k.get("state") == "next"
        ]
        if current:
            kids = ", ".join(str(k["kid"]) for k in current)
            click.echo(
                f"error: next key {kids} is already published; a new next key revokes it, "
                "and verifiers that cached it then fetch the JWKS again. "
                "Pass --replace-next to do that.",
                err=True,
            )
            sys.exit(EXIT_FAILED)
    body: dict[str, Any] = {"mode": mode, "confirm_invalidate": confirm_invalidate}
    if alg:
        body["alg"] = alg
    data = api.call("POST", f"/projects/{project_id}/keys", body)
    if api.as_json:
        print_json(data)
    else:
        click.echo(f"{data['state']} key {data['kid']} created at {data['created_at']}")
        if data.get("public_jwk"):
            click.echo(json.dumps(data["public_jwk"], indent=2))
        if data.get("secret_jwk"):
            where = (
                'Add it to the "keys" of secret_jwks.json on every verifier before '
                "the rotation promotes it"
                if data["state"] == "next"
                else 'Put it in the "keys" of secret_jwks.json on every verifier'
            )
            _show_secret(data["secret_jwk"], f"the {data['state']} key {data['kid']}", where)


@keys.command("rotate")
@click.argument("project_id")
@click.option("--emergency", is_flag=True, help="Skip the publication wait.")
@pass_api
def keys_rotate(api: _Api, project_id: str, emergency: bool) -> None:
    """Promote the next key to active; the active key starts retiring."""
    data = api.call("POST", f"/projects/{project_id}/keys/rotate", {"emergency": emergency})
    api.show(data, ["active", "retiring", "next"])
    if not api.as_json and data.get("next") is None:
        click.echo(
            "note: no next key was pre-published (shared-secret project). Before the next "
            "rotation, run `jwkit admin keys generate PROJECT` and give its secret to "
            "every verifier.",
            err=True,
        )


@keys.command("revoke")
@click.argument("project_id")
@click.argument("kid")
@click.option("--emergency", is_flag=True, help="Revoke even if tokens may still be valid.")
@pass_api
def keys_revoke(api: _Api, project_id: str, kid: str, emergency: bool) -> None:
    """Take a key out of the JWKS. A kid starting with "-" goes after "--"."""
    data = api.call("POST", f"/projects/{project_id}/keys/{kid}/revoke", {"emergency": emergency})
    api.show(data, ["kid", "state", "revoked_at"])


@admin.group("tokens")
def tokens() -> None:
    """Access tokens."""


@tokens.command("mint")
@click.argument("project_id")
@click.option("--sub", required=True, help="Subject (the user or service the token is for).")
@click.option(
    "--ttl",
    callback=_seconds,
    default=None,
    help="Lifetime: 900, 15m, 2h (at most the project's maximum).",
)
@click.option(
    "--scope", "scopes", multiple=True, help="Scope to grant (repeatable, or space-separated)."
)
@click.option("--claims", default=None, help="Extra claims as a JSON object.")
@click.option("--sid", default=None, help="Session id (the sid claim): revoke by it later.")
@pass_api
def tokens_mint(
    api: _Api,
    project_id: str,
    sub: str,
    ttl: int | None,
    scopes: tuple[str, ...],
    claims: str | None,
    sid: str | None = None,
) -> None:
    """Mint an access token signed by the project's active key."""
    body: dict[str, Any] = {"sub": sub}
    if sid is not None:
        body["sid"] = sid
    if ttl is not None:
        body["ttl"] = ttl
    scope = " ".join(" ".join(scopes).split())
    if scope:
        body["scope"] = scope
    if claims:
        try:
            body["claims"] = json.loads(claims)
        except ValueError as exc:
            raise click.BadParameter("must be a JSON object", param_hint="--claims") from exc
    data = api.call("POST", f"/projects/{project_id}/tokens", body)
    if api.as_json:
        print_json(data)
    else:
        click.echo(data["access_token"])


@admin.group("clients")
def clients() -> None:
    """OAuth clients (client credentials grant)."""


@clients.command("create")
@click.argument("project_id")
@click.option("--name", required=True)
@click.option("--scope", "scopes", multiple=True, help="Allowed scope (repeatable).")
@pass_api
def clients_create(api: _Api, project_id: str, name: str, scopes: tuple[str, ...]) -> None:
    """Create a client; its secret is printed once."""
    data = api.call(
        "POST", f"/projects/{project_id}/clients", {"name": name, "scopes": list(scopes)}
    )
    if api.as_json:
        print_json(data)
    else:
        click.echo(f"client_id:     {data['client_id']}")
        click.echo(f"client_secret: {data['client_secret']}   (shown once)")


@clients.command("list")
@click.argument("project_id")
@pass_api
def clients_list(api: _Api, project_id: str) -> None:
    """List a project's OAuth clients (never their secrets)."""
    api.show(
        api.call("GET", f"/projects/{project_id}/clients"),
        ["client_id", "name", "scopes", "created_at"],
        "clients",
    )


@clients.command("delete")
@click.argument("project_id")
@click.argument("client_id")
@pass_api
def clients_delete(api: _Api, project_id: str, client_id: str) -> None:
    """Delete a client: it can get no new tokens."""
    api.call("DELETE", f"/projects/{project_id}/clients/{client_id}")
    if not api.as_json:
        click.echo(f"deleted {client_id}")


_REVOCATION_COLS = ["id", "by", "value", "status", "count", "created_at", "effective_by"]


def _revocation_row(item: dict[str, Any]) -> dict[str, Any]:
    by = next((k for k in ("jti", "sub", "sid", "client_id") if k in item), "-")
    return {**item, "by": by, "value": item.get(by)}


@admin.command("revoke")
@click.argument("project_id")
@click.option("--sub", default=None, help="Every live token of this subject (user).")
@click.option("--sid", default=None, help="Every live token of this session.")
@click.option("--jti", default=None, help="The one token with this id.")
@click.option("--client-id", default=None, help="Every live token of this OAuth client.")
@click.option("--suspend", is_flag=True, help="Suspend instead of revoking (can be lifted).")
@click.option("--lift", is_flag=True, help="Lift a suspension (never undoes a revocation).")
@pass_api
def revoke(
    api: _Api,
    project_id: str,
    sub: str | None,
    sid: str | None,
    jti: str | None,
    client_id: str | None,
    suspend: bool,
    lift: bool,
) -> None:
    """Revoke live access tokens by exactly one of --sub, --sid, --jti, --client-id.

    Verifiers that check token status reject them by the printed time (at once for those
    listening to the service's events).
    """
    given = {"sub": sub, "sid": sid, "jti": jti, "client_id": client_id}
    chosen = {k: v for k, v in given.items() if v is not None}
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --sub, --sid, --jti, --client-id")
    if suspend and lift:
        raise click.UsageError("--suspend and --lift exclude each other")
    status = "suspended" if suspend else "valid" if lift else "invalid"
    data = api.call("POST", f"/projects/{project_id}/revocations", {**chosen, "status": status})
    if api.as_json:
        print_json(data)
        return
    ((kind, value),) = chosen.items()
    verb = {"invalid": "revoked", "suspended": "suspended", "valid": "reinstated"}[status]
    click.echo(
        f"{verb} {data['count']} live token(s) with {kind} {value!r}; "
        f"every verifier honouring the list's ttl sees it by {data['effective_by']}"
    )


@admin.group("revocations")
def revocations() -> None:
    """Revocations of access tokens (token status)."""


@revocations.command("list")
@click.argument("project_id")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--cursor", default=None, help="The next_cursor of the previous page.")
@pass_api
def revocations_list(api: _Api, project_id: str, limit: int, cursor: str | None) -> None:
    """Newest first."""
    path = f"/projects/{project_id}/revocations?limit={limit}"
    if cursor:
        path += f"&cursor={cursor}"
    data = api.call("GET", path)
    if api.as_json:
        print_json(data)
        return
    _table([_revocation_row(r) for r in data["revocations"]], _REVOCATION_COLS)
    if data.get("next_cursor"):
        click.echo(f"more: --cursor {data['next_cursor']}")


@admin.command("reset-credentials")
@click.option("--database-url", default=None, help="SQLAlchemy URL [default: from JWKIT_*].")
def reset_credentials(database_url: str | None) -> None:
    """Make a new admin API token and console password (run where `jwkit serve` runs).

    Works on the service's own database, not through the API, for when the credentials
    printed at first start were lost. The old token and password stop working and every
    console session ends (a running service notices within a second).
    """
    import os

    from jwkit.service.domain.admins import reset_admin
    from jwkit.service.domain.common import unix_now

    from ._state import load_settings, open_existing

    settings = load_settings(database_url)
    database = open_existing(settings)
    try:
        with database.session() as session, session.begin():
            fresh = reset_admin(session, now=unix_now())
    finally:
        database.dispose()
    click.echo("jwkit: new admin credentials (shown once, stored only as hashes):")
    click.echo(f"  admin API token:  {fresh.token}")
    click.echo(f"  console login:    {fresh.username} / {fresh.password}")
    for name in ("JWKIT_ADMIN_TOKEN", "JWKIT_ADMIN_PASSWORD"):
        if os.environ.get(name):
            click.echo(
                f"warning: {name} is set; the service stores it again at its next "
                "start, replacing the new one",
                err=True,
            )
