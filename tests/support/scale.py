"""Many projects at once, written straight into the database (scale tests and
``benchmarks/scale.py``): creating them one by one through the admin API would take minutes.

Each seeded project looks like one the service created: an ``active`` and a pre-published
``next`` key, sealed by the vault for that project. The key pairs come from a small pool (one
pair per ``POOL`` projects shares its public key) because generating 200,000 key pairs would
dominate the run; sealing stays per project, as the vault binds each ciphertext to its project
and kid. ``next_due_at`` is left ``NULL``: no rotation policy, nothing for the scheduler.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import insert, update

from jwkit.jose.jwk import JWK
from jwkit.service.domain import keys
from jwkit.service.domain.clients import hash_secret
from jwkit.service.store.db import Database
from jwkit.service.store.models import Client, Key, Project, ServiceState
from jwkit.service.vault import Vault

__all__ = ["CLIENT_SECRET", "POOL", "client_id", "seed_projects"]

POOL = 64
#: The secret of every seeded client (``client_id(n)`` belongs to project ``n``).
CLIENT_SECRET = "seeded-secret"


def client_id(prefix: str, n: int) -> str:
    return f"cli_{prefix}{n:08d}"


_BATCH = 2000


def seed_projects(
    db: Database,
    vault: Vault,
    count: int,
    *,
    now: int,
    prefix: str = "proj_seed",
    alg: str = "ES256",
    jwks_max_age: int = 300,
    clients: bool = False,
    max_exp: int | None = None,
) -> list[str]:
    """Insert ``count`` projects (ids ``{prefix}{n:08d}``) with their two keys (and, with
    ``clients``, one client each: :func:`client_id`, :data:`CLIENT_SECRET`; with ``max_exp``,
    the active keys' reserved expiry mark, as a fleet already signing would have left it);
    bump the change version (so running replicas reload). Returns the ids."""
    secret_hash = hash_secret(CLIENT_SECRET)
    pool = [(JWK.generate(alg), JWK.generate(alg)) for _ in range(min(POOL, max(count, 1)))]
    texts = [
        tuple((k.to_json(private=True).encode(), json.dumps(k.public().to_dict(), sort_keys=True))
              for k in pair)
        for pair in pool
    ]  # fmt: skip
    ids = [f"{prefix}{n:08d}" for n in range(count)]
    for start in range(0, count, _BATCH):
        projects: list[dict[str, Any]] = []
        rows: list[dict[str, Any]] = []
        client_rows: list[dict[str, Any]] = []
        for n in range(start, min(start + _BATCH, count)):
            pid = ids[n]
            projects.append(
                dict(id=pid, name=f"seeded {n}", audience=pid, algorithm=alg, token_ttl=300,
                     max_token_ttl=3600, jwks_max_age=jwks_max_age, rotation_days=None,
                     created_at=now, token_status=False, next_due_at=None)
            )  # fmt: skip
            if clients:
                client_rows.append(
                    dict(id=client_id(prefix, n), project_id=pid, name="seeded",
                         secret_hash=secret_hash, scopes="read", created_at=now)
                )  # fmt: skip
            pair, material = pool[n % len(pool)], texts[n % len(pool)]
            for (jwk, (private, public)), state in zip(
                zip(pair, material, strict=True), (keys.ACTIVE, keys.NEXT), strict=True
            ):
                kid = jwk.kid
                assert kid is not None
                sealed = vault.seal(private, project_id=pid, kid=kid)
                rows.append(
                    dict(project_id=pid, kid=kid, alg=alg, state=state, public_jwk=public,
                         wrapped_dek=sealed.wrapped_dek, ciphertext=sealed.ciphertext,
                         kek_id=sealed.kek_id, created_at=now, published_at=now,
                         activated_at=now if state == keys.ACTIVE else None, retired_at=None,
                         revoked_at=None,
                         max_exp=max_exp if state == keys.ACTIVE else None)
                )  # fmt: skip
        # a bulk insert may outlast the per-call deadline on a busy machine
        with db.extended_deadline(600), db.session() as session, session.begin():
            session.execute(insert(Project), projects)
            session.execute(insert(Key), rows)
            if client_rows:
                session.execute(insert(Client), client_rows)
    with db.session() as session, session.begin():
        bumped = ServiceState.version + 1  # no change row: replicas take the full reload
        session.execute(update(ServiceState).where(ServiceState.id == 1).values(version=bumped))
    return ids
