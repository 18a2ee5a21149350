"""OAuth 2.0 clients of a project (RFC 6749 §2): 256-bit random secrets, stored as SHA-256.

The secret is returned once at creation. Lookups compare hashes with
:func:`hmac.compare_digest`, so timing does not reveal how much of a guess was right.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sys
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from jwkit.service.domain import audit
from jwkit.service.domain.common import NotFound, isoformat, new_id
from jwkit.service.domain.paging import Page, id_or_name, keyset_page
from jwkit.service.domain.projects import get_project
from jwkit.service.store.models import Client

__all__ = [
    "CLIENT_ID_MAX",
    "ClientRecord",
    "client_to_json",
    "create_client",
    "delete_client",
    "hash_secret",
    "load_client",
    "load_clients",
    "page_clients",
    "secret_matches",
]


#: Client ids are ``cli_`` and random hex.
ID_PREFIX = "cli"
#: The longest client id the database can hold: longer ones name no client.
CLIENT_ID_MAX = 64


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """What the token endpoint caches per client id."""

    client_id: str
    project_id: str
    secret_hash: str
    scopes: frozenset[str]


def create_client(
    session: Session, project_id: str, *, name: str, scopes: list[str], now: int, actor: str
) -> tuple[Client, str]:
    """Create a client; return it with its plaintext secret (shown once, never stored)."""
    get_project(session, project_id)
    secret = secrets.token_urlsafe(32)  # 256 bits
    client = Client(
        id=new_id(ID_PREFIX),
        project_id=project_id,
        name=name,
        secret_hash=hash_secret(secret),
        scopes=" ".join(sorted(set(scopes))),
        created_at=now,
    )
    session.add(client)
    session.flush()
    audit.record(
        session,
        now=now,
        actor=actor,
        action="client.created",
        project_id=project_id,
        detail={"client_id": client.id, "scopes": sorted(set(scopes))},
    )
    return client, secret


def page_clients(
    session: Session,
    project_id: str,
    *,
    limit: int,
    cursor: str | None = None,
    search: str | None = None,
) -> Page[Client]:
    """The project's clients oldest first, one page (:mod:`.paging`, index
    ``ix_clients_project_created``); ``search`` is a client id (``cli_…``) or the start of a
    name, case ignored."""
    get_project(session, project_id)
    stmt = select(Client).where(Client.project_id == project_id)
    order = "clients"
    if search:
        stmt = stmt.where(id_or_name(session, Client.id, Client.name, ID_PREFIX, search))
        order = "clients?" + search
    return keyset_page(
        session, stmt, order, [Client.created_at, Client.id], limit=limit, cursor=cursor
    )


def delete_client(
    session: Session, project_id: str, client_id: str, *, now: int, actor: str
) -> None:
    client = session.get(Client, client_id)
    if client is None or client.project_id != project_id:
        raise NotFound(f"no client {client_id!r} in this project")
    session.delete(client)
    audit.record(
        session,
        now=now,
        actor=actor,
        action="client.deleted",
        project_id=project_id,
        detail={"client_id": client_id},
    )


#: Scope sets as records hold them: one frozenset per distinct ``scopes`` text (a frozenset
#: costs about 200 bytes, and a replica may cache 100,000 clients with a handful of sets).
_SCOPE_SETS: dict[str, frozenset[str]] = {}
_SCOPE_SETS_MAX = 4096


def _scope_set(scopes: str) -> frozenset[str]:
    found = _SCOPE_SETS.get(scopes)
    if found is None:
        if len(_SCOPE_SETS) >= _SCOPE_SETS_MAX:
            _SCOPE_SETS.clear()  # many distinct sets: share nothing rather than grow
        found = _SCOPE_SETS[scopes] = frozenset(scopes.split())
    return found


def _record(client_id: str, project_id: str, secret_hash: str, scopes: str) -> ClientRecord:
    # the project id interned: the record shares the string its project's view holds
    return ClientRecord(client_id, sys.intern(project_id), secret_hash, _scope_set(scopes))


def load_client(session: Session, client_id: str) -> ClientRecord | None:
    client = session.get(Client, client_id)
    if client is None:
        return None
    return _record(client.id, client.project_id, client.secret_hash, client.scopes)


_RECORD_COLUMNS = (Client.id, Client.project_id, Client.secret_hash, Client.scopes)


def load_clients(session: Session, client_ids: list[str]) -> dict[str, ClientRecord]:
    """The records of those of ``client_ids`` that exist, in one query of the four columns
    a record holds (plain rows: the safety net re-reads a hundred a second)."""
    if not client_ids:
        return {}
    query = select(*_RECORD_COLUMNS).where(Client.id.in_(client_ids))
    return {row[0]: _record(*row) for row in session.connection().execute(query)}


def client_to_json(client: Client) -> dict[str, Any]:
    return {
        "client_id": client.id,
        "name": client.name,
        "scopes": client.scopes.split(),
        "created_at": isoformat(client.created_at),
    }
