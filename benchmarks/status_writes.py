"""Scale (issue 18): what the token endpoint's background writes cost the worker, on SQLite
and PostgreSQL, with many projects.

Run: ``.venv/bin/python benchmarks/status_writes.py [--projects 3000] [--rounds 5]``. Prints
markdown tables (CPU of the worker process and wall time, medians of the rounds).

Two writes run in the worker beside the token endpoint, sharing its CPU:

* **a flush of issuance records** (``StatusRegistry.flush``, once a second): ``--projects``
  records, one token of each project (requests spread over every project) or all of one
  project, written with the fast PostgreSQL forms of ``jwkit.service.store.bulk``
  (``COPY``, array parameters) and with the plain forms (``executemany``, expanding ``IN``:
  what SQLite always uses), alternating in every round;
* **block reservations** (the background reserver): a block of status indices for each of
  1,024 projects, 64 projects per transaction, with ``revocation.reserve_blocks`` (three
  statements per batch) and with ``revocation.reserve_block`` per project (three statements
  each), alternating in every round.

PostgreSQL is a throwaway server of the suite's own (``initdb``/``pg_ctl``).
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from pydantic import SecretStr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from _timing import table  # noqa: E402
from tests.support.scale import seed_projects  # noqa: E402

from jwkit.service.domain import revocation  # noqa: E402
from jwkit.service.runtime import Service  # noqa: E402
from jwkit.service.settings import Settings  # noqa: E402
from jwkit.service.statuslists import now_ms  # noqa: E402
from jwkit.service.store import bulk  # noqa: E402

RESERVED = 1024
BATCH = 64


@contextlib.contextmanager
def database(kind: str) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tempfile.mkdtemp(prefix='status-writes-')}/jwkit.db"
        return
    from tests.support.postgres import fresh_database, own_postgres_server

    with own_postgres_server() as cluster:
        yield fresh_database(cluster.server, prefix="writes")


def timed(work: Callable[[], object]) -> tuple[float, float]:
    """(CPU ms of this process, wall ms) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return (time.process_time() - cpu) * 1e3, (time.perf_counter() - wall) * 1e3


def measure(kind: str, projects: int, rounds: int) -> list[tuple[str, ...]]:
    with database(kind) as url:
        home = Path(tempfile.mkdtemp(prefix="status-writes-"))
        settings = Settings(home=home / ".jwkit", database_url=url,
                            admin_token=SecretStr("x" * 40), scheduler_interval=0)  # fmt: skip
        service = Service.open(settings)
        now = int(time.time())
        ids = seed_projects(service.db, service.vault, projects, now=now, prefix="proj_w",
                            clients=True, max_exp=now + 4 * 3600)  # fmt: skip
        service.close()
        service = Service.open(settings)
        service.state.warm()
        status = service.state.status
        reserved = min(RESERVED, projects)
        for start in range(0, projects, BATCH):
            status.refill_many(ids[start : start + BATCH])

        def flush(pids: list[str], fast: bool) -> Callable[[], object]:
            for pid in pids:
                slot = status.slot(pid)
                client = f"cli_{pid}"
                status.note_issued(revocation.Issued(
                    pid, secrets.token_hex(8), slot.list_id, slot.idx, client, None, client,
                    now_ms(), now + 900, slot.rules_seen))  # fmt: skip

            def run() -> None:
                bulk.FAST = fast
                try:
                    status.flush()
                finally:
                    bulk.FAST = True

            return run

        def reserve(together: bool) -> Callable[[], object]:
            def run() -> None:
                for start in range(0, reserved, BATCH):
                    batch = ids[start : start + BATCH]
                    with service.db.session() as session, session.begin():
                        if together:
                            revocation.reserve_blocks(session, batch, now=now, clock_skew=60,
                                                      list_ttl=300)  # fmt: skip
                        else:
                            for pid in batch:
                                revocation.reserve_block(session, pid, now=now, clock_skew=60,
                                                         list_ttl=300)  # fmt: skip

            return run

        cases: dict[str, Callable[[], Callable[[], object]]] = {
            f"flush, {projects:,} projects' records, fast forms": lambda: flush(ids, True),
            f"flush, {projects:,} projects' records, plain forms": lambda: flush(ids, False),
            f"flush, {projects:,} records of one project, fast forms": (
                lambda: flush([ids[0]] * projects, True)
            ),
            f"flush, {projects:,} records of one project, plain forms": (
                lambda: flush([ids[0]] * projects, False)
            ),
            f"reserve {reserved:,} blocks, reserve_blocks per {BATCH}": lambda: reserve(True),
            f"reserve {reserved:,} blocks, reserve_block each": lambda: reserve(False),
        }
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
        for n in range(rounds):  # every other round in reverse: no case always comes first
            order = list(cases.items())
            for name, prepare in order[:: -1 if n % 2 else 1]:
                samples[name].append(timed(prepare()))
        service.close()
    rows = []
    for name, got in samples.items():
        cpu = statistics.median(c for c, _ in got)
        wall = statistics.median(w for _, w in got)
        per = min(RESERVED, projects) if name.startswith("reserve") else projects
        rows.append((kind, name, f"{cpu:,.1f}", f"{wall:,.1f}", f"{cpu / per * 1e3:,.1f}"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--projects", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    rows = [row for kind in kinds for row in measure(kind, args.projects, args.rounds)]
    header = ("database", "write", "worker CPU (ms)", "wall (ms)", "CPU per record/block (µs)")
    print(table(rows, header))
    print(
        f"\nmedians of {args.rounds} rounds; each round runs every case in turn (every other"
        " round in reverse order)"
    )


if __name__ == "__main__":
    main()
