"""``/metrics`` of real ``jwkit serve`` processes: exact counts with one worker, and with
several the counts of every worker added up (prometheus-client's multiprocess mode)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from .conftest import AUTH, ServerProcess

pytestmark = pytest.mark.timeout(120)

_CLOSE = {"Connection": "close"}  # a fresh connection per request: any worker may accept it


def _setup(server: ServerProcess) -> tuple[dict[str, Any], dict[str, Any]]:
    """A project and an OAuth client of it."""
    r = httpx.post(f"{server.url}/api/v1/projects", json={"name": "metrics"}, headers=AUTH)
    assert r.status_code == 201, r.text
    project = r.json()
    r = httpx.post(
        f"{server.url}/api/v1/projects/{project['id']}/clients",
        json={"name": "backend", "scopes": ["read"]},
        headers=AUTH,
    )
    assert r.status_code == 201, r.text
    return project, r.json()


def _documents(server: ServerProcess, project: dict[str, Any], n: int) -> set[int]:
    """``n`` JWKS/discovery requests, each on its own connection: plain ones (the wire path)
    and conditional ones (the ASGI path). Returns the statuses seen."""
    base = f"{server.url}/p/{project['id']}/.well-known"
    statuses = set()
    for i in range(n):
        if i % 4 == 3:
            r = httpx.get(f"{base}/jwks.json", headers={**_CLOSE, "If-None-Match": "*"})
        else:
            r = httpx.get(
                f"{base}/{'jwks.json' if i % 2 else 'openid-configuration'}", headers=_CLOSE
            )
        statuses.add(r.status_code)
    return statuses


def _tokens(server: ServerProcess, project: dict[str, Any], cl: dict[str, Any], n: int) -> None:
    for _ in range(n):
        r = httpx.post(
            f"{server.url}/p/{project['id']}/oauth2/token",
            headers=_CLOSE,
            data={"grant_type": "client_credentials"},
            auth=(cl["client_id"], cl["client_secret"]),
        )
        assert r.status_code == 200, r.text


def _total(text: str, name: str) -> float:
    """The sum of a metric's samples over all its labels in a /metrics text."""
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{.*}})? (\S+)$", text, re.M))


def _documents_by_worker(metrics_dir: Path, statuses: tuple[str, ...]) -> dict[str, float]:
    """Each worker's own ``jwkit_document_requests`` count with these statuses, from its file."""
    counts = {}
    for path in metrics_dir.glob("counter_*.db"):
        merged = MultiProcessCollector.merge([str(path)], accumulate=False)
        counts[path.stem] = sum(
            sample.value
            for metric in merged
            if metric.name == "jwkit_document_requests"
            for sample in metric.samples
            if sample.labels["status"] in statuses
        )
    return counts


def _settled(scraper: httpx.Client, documents: int, tokens: int) -> str:
    """Scrape until the totals reach the requests made: the scraped worker flushes its own
    tallies, the other one publishes its own every second."""
    deadline = time.monotonic() + 5
    while True:
        text = scraper.get("/metrics").text
        seen = (
            _total(text, "jwkit_document_requests_total"),
            _total(text, "jwkit_tokens_issued_total"),
        )
        if seen == (documents, tokens):
            return text
        assert seen[0] <= documents and seen[1] <= tokens, seen
        assert time.monotonic() < deadline, (seen, documents, tokens)
        time.sleep(0.1)


def test_several_workers_publish_counts_added_up(spawn: Any, tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"  # the server's TMPDIR, where its metrics directory goes
    scratch.mkdir()
    server = spawn(JWKIT_WORKERS="2", JWKIT_METRICS="public", TMPDIR=str(scratch))
    [metrics_dir] = scratch.glob("jwkit-metrics-*")
    assert metrics_dir.stat().st_mode & 0o777 == 0o700
    project, cl = _setup(server)
    documents = tokens = 0
    served: dict[str, float] = {}
    with httpx.Client(base_url=server.url) as scraper:  # one connection: one worker answers
        for _ in range(10):  # until both workers serve the project (each syncs every second)
            _documents(server, project, 40)  # a 404 counts too, until a worker has synced
            documents += 40
            _settled(scraper, documents, tokens)
            served = _documents_by_worker(metrics_dir, ("200", "304"))
            if len([n for n in served.values() if n]) >= 2:
                break
        assert len([n for n in served.values() if n]) == 2, served
        _tokens(server, project, cl, 10)
        tokens += 10
        text = _settled(scraper, documents, tokens)
    assert sum(_documents_by_worker(metrics_dir, ("200", "304", "404")).values()) == documents
    fast_path = os.environ.get("JWKIT_FAST_PATH", "").lower() not in ("false", "0")
    assert (_total(text, "jwkit_wire_responses_total") > 0) == fast_path
    assert "python_info" not in text  # one worker's own process metrics would mislead
    server.stop()
    assert server.proc is not None and server.proc.returncode == 0, server.log()
    assert not metrics_dir.exists()


def test_one_worker_counts_exactly_in_memory(spawn: Any, tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    server = spawn(JWKIT_METRICS="public", TMPDIR=str(scratch))
    project, cl = _setup(server)
    assert _documents(server, project, 30) == {200, 304}
    _tokens(server, project, cl, 5)
    text = httpx.get(f"{server.url}/metrics").text  # right away: this scrape flushes
    assert _total(text, "jwkit_document_requests_total") == 30
    assert _total(text, "jwkit_tokens_issued_total") == 5
    assert "python_info" in text  # the process's default registry, as before
    assert list(scratch.glob("jwkit-metrics-*")) == []


def test_a_worker_publishes_its_tallies_when_it_stops(tmp_path: Path) -> None:
    """In multiprocess mode the lifespan's last flush publishes what no scrape has flushed."""
    script = (
        "import asyncio\n"
        "from jwkit.service.http import metrics\n"
        "async def lifespan():\n"
        "    async with metrics.publishing_tallies(interval=3600):\n"
        "        metrics.WIRE.n += 3\n"
        "assert metrics.MULTIPROCESS\n"
        "asyncio.run(lifespan())\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)
    merged = MultiProcessCollector.merge([str(p) for p in tmp_path.glob("counter_*.db")])
    [wire] = [m for m in merged if m.name == "jwkit_wire_responses"]
    assert [s.value for s in wire.samples] == [3]
