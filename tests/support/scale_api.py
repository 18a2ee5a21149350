"""Seeding many rows straight into a real database, for the paging tests of the admin lists
(API, CLI and console): thousands of projects or clients in one statement each, without
keys, so a test can stand where a deployment with very many projects stands."""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, insert

from jwkit.service.store.models import Client, Project

__all__ = ["seed_clients", "seed_projects"]


def seed_projects(
    url: str, count: int, *, name: str = "tenant-{:05d}", at: int = 1_700_000_000, start: int = 1
) -> list[str]:
    """Insert ``count`` projects named ``name.format(i)`` (``i`` from 1), created one second
    apart from ``at``; their ids, oldest first. Pairs of projects share a ``created_at`` so
    the cursor's tie-break on ``id`` is exercised."""
    rows: list[dict[str, Any]] = []
    for i in range(start, start + count):
        pid = f"proj_seed{i:019d}"
        rows.append(
            {
                "id": pid,
                "name": name.format(i),
                "audience": pid,
                "algorithm": "ES256",
                "token_ttl": 900,
                "max_token_ttl": 86400,
                "jwks_max_age": 300,
                "rotation_days": None,
                "created_at": at + i // 2,
                "token_status": False,
            }
        )
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(insert(Project), rows)
    finally:
        engine.dispose()
    return [r["id"] for r in rows]


def seed_clients(url: str, project_id: str, count: int, *, at: int = 1_700_000_000) -> list[str]:
    """Insert ``count`` clients of ``project_id`` named ``client-{i}`` (no usable secret)."""
    rows = [
        {
            "id": f"cli_seed{i:08d}",
            "project_id": project_id,
            "name": f"client-{i:05d}",
            "secret_hash": "0" * 64,
            "scopes": "",
            "created_at": at,
        }
        for i in range(1, count + 1)
    ]
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(insert(Client), rows)
    finally:
        engine.dispose()
    return [r["id"] for r in rows]
