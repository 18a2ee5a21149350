"""``jwkit serve``: run the key service with uvicorn."""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from collections.abc import Iterator
from typing import Any

import click

from ._output import fail_input

_FLAG_ENV = {
    "host": "JWKIT_HOST",
    "port": "JWKIT_PORT",
    "database_url": "JWKIT_DATABASE_URL",
    "public_url": "JWKIT_PUBLIC_URL",
    "home": "JWKIT_HOME",
    "workers": "JWKIT_WORKERS",
}
_MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus-client when imported


@contextlib.contextmanager
def _shared_metrics(workers: int) -> Iterator[None]:
    """With several workers, prometheus-client's multiprocess mode: each worker keeps its
    counters in files under a fresh private directory (mode 0700, never a stale one from an
    earlier run) that ``/metrics`` adds up; the directory goes when the server stops. Worker
    processes are spawned, not forked, so they inherit the variable and import
    prometheus-client afresh. One worker keeps its counters in memory, as always."""
    if workers == 1:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="jwkit-metrics-") as path:
        os.environ[_MULTIPROC_DIR_ENV] = path
        try:
            yield
        finally:
            del os.environ[_MULTIPROC_DIR_ENV]


def _bind_error(host: str, port: int) -> str | None:
    """Why uvicorn could not listen on ``host:port`` (as it binds: SO_REUSEADDR), or None.

    Checked before first-start credentials are generated: printed and then lost to a busy
    port, they could never be shown again."""
    if port == 0:
        return None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        return f"cannot resolve {host}: {exc}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


# Below these, a configured secret is guessable (the generated ones are far longer).
MIN_TOKEN_LENGTH = 32
MIN_PASSWORD_LENGTH = 12


def _weak_secrets(token: str | None, password: str | None) -> list[str]:
    weak = []
    if token is not None and (len(token) < MIN_TOKEN_LENGTH or len(set(token)) < 10):
        weak.append(
            f"JWKIT_ADMIN_TOKEN is weak: use at least {MIN_TOKEN_LENGTH} random "
            "characters, e.g. from `openssl rand -base64 32`"
        )
    if password is not None and (len(password) < MIN_PASSWORD_LENGTH or len(set(password)) < 6):
        weak.append(
            f"JWKIT_ADMIN_PASSWORD is weak: use at least {MIN_PASSWORD_LENGTH} "
            "characters that are hard to guess"
        )
    return weak


@click.command("serve")
@click.option("--host", default=None, help="Interface to listen on [default: 127.0.0.1].")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=None, help="Port to listen on [default: 8000]."
)
@click.option(
    "--database-url", default=None, help="SQLAlchemy URL [default: SQLite at $JWKIT_HOME/jwkit.db]."
)
@click.option(
    "--public-url", default=None, help="Base URL clients use [default: http://HOST:PORT]."
)
@click.option("--home", default=None, help="State directory [default: ./.jwkit].")
@click.option(
    "--workers", type=click.IntRange(1, 64), default=None, help="Worker processes [default: 1]."
)
@click.option(
    "--access-log/--no-access-log", default=False, show_default=True, help="Log every request."
)
def serve(access_log: bool, **flags: object) -> None:
    """Run the key service (JWKS, discovery, tokens, admin API, console).

    Settings also come from JWKIT_* environment variables. On first start the admin API
    token and the console password for user "admin" are generated and printed once; lost
    them? `jwkit admin reset-credentials` (in the same folder) makes new ones.
    """
    import uvicorn
    from pydantic import ValidationError
    from sqlalchemy.exc import SQLAlchemyError

    from jwkit.service.files import InsecurePathError
    from jwkit.service.keys import KeyBackendError
    from jwkit.service.runtime import Service
    from jwkit.service.settings import Settings
    from jwkit.service.vault import MasterKeyError, VaultError

    for name, value in flags.items():
        if value is not None:
            os.environ[_FLAG_ENV[name]] = str(value)
    try:
        settings = Settings()
    except ValidationError as exc:
        fail_input(f"invalid settings: {exc.errors()[0].get('loc')}: {exc.errors()[0]['msg']}")
    if "JWKIT_PUBLIC_URL" not in os.environ:
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host  # noqa: S104
        os.environ["JWKIT_PUBLIC_URL"] = f"http://{host}:{settings.port}"
        settings = Settings()
    busy = _bind_error(settings.host, settings.port)
    if busy is not None:
        fail_input(f"{busy}; choose another with --port (or JWKIT_PORT)")
    token = settings.admin_token.get_secret_value() if settings.admin_token else None
    password = settings.admin_password.get_secret_value() if settings.admin_password else None
    for warning in _weak_secrets(token, password):
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    try:
        service = Service.open(settings)
    except MasterKeyError as exc:
        fail_input(str(exc))
    except KeyBackendError as exc:  # no fallback to software keys
        fail_input(f"key backend: {exc}")
    except VaultError:
        fail_input(
            "the stored keys cannot be opened with this master key "
            "(JWKIT_MASTER_KEY or $JWKIT_HOME/master.key)"
        )
    except InsecurePathError as exc:
        fail_input(str(exc))
    except SQLAlchemyError as exc:
        fail_input(f"cannot open the database: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    generated = service.generated
    service.close()
    if generated is not None:
        click.echo("jwkit: first start, admin credentials (shown once, stored only as hashes):")
        if generated.token:
            click.echo(f"  admin API token:  {generated.token}")
        if generated.password:
            click.echo(f"  console login:    {generated.username} / {generated.password}")
    elif token is None or password is None:
        click.echo(
            "jwkit: admin credentials were printed at first start; lost them? "
            "run `jwkit admin reset-credentials` in this folder"
        )
    click.echo(f"jwkit: console at {settings.public_url}/console")
    docs = "" if settings.api_docs == "off" else " (docs: /api/docs)"
    click.echo(f"jwkit: admin API at {settings.public_url}/api/v1{docs}", nl=True)
    try:  # request-head limits; JWKS, discovery and tokens straight from the HTTP parser
        from jwkit.service.http.protocol import GuardedProtocol
        from jwkit.service.http.wire import FastDocumentProtocol

        http: Any = FastDocumentProtocol if settings.fast_path else GuardedProtocol
    except ImportError:  # no httptools: uvicorn's h11 (its head limit, no head deadline)
        http = "auto"
    with _shared_metrics(settings.workers):
        uvicorn.run(
            "jwkit.service.http.app:app_from_env",
            http=http,
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            # A worker gets a minute to import the app and answer the supervisor's first
            # ping: uvicorn's 5 s kills workers of a busy machine before they ever start.
            timeout_worker_healthcheck=60,
            log_level=settings.log_level,
            access_log=access_log,
            server_header=False,
            h11_max_incomplete_event_size=settings.max_header_bytes,
            # X-Forwarded-For/-Proto only from the proxies named in JWKIT_FORWARDED_ALLOW_IPS;
            # uvicorn's own default would believe any loopback peer (and FORWARDED_ALLOW_IPS).
            proxy_headers=bool(settings.forwarded_allow_ips.strip()),
            forwarded_allow_ips=settings.forwarded_allow_ips.strip() or None,
        )
