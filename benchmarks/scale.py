"""Issue 18: jwkit serve with many projects on one database (SQLite or PostgreSQL).

For each size (projects already in the database) a fresh database is bulk-seeded directly
(``tests/support/scale.py``: one active and one next ES256 key per project, sealed per project,
and one OAuth client each), then:

* **start-up**: ``jwkit serve`` from spawn to the first ``/healthz`` answer (imports included),
  and, in process, ``Service.open`` (migrations check, id load, master-key check);
* **creations/s**: projects created one after another through the admin API (``--creations``);
* **rotation visibility**: a second replica on the same database, once its ``/readyz`` says it
  holds every project; an emergency rotation through replica A's admin API until replica B's
  JWKS serves the new key (``--rotations`` times; B learns of it through its change check,
  ``JWKIT_CHANGE_CHECK_INTERVAL``, on SQLite, or ``NOTIFY`` on PostgreSQL);
* **throughput**: ``wrk`` on JWKS, discovery and the token endpoint (client_secret_post), each
  request for a project drawn at random over all projects (Lua ``math.random``). By default
  (``--method turns``) each round loads the 1-project server and the measured one at once, one
  ``wrk`` each, and the two servers take turns on their CPU, ``--turn`` seconds each (the
  other stopped with ``SIGSTOP``); each rate is requests per second of that server's own CPU
  time (its process CPU clock). The host's noise (its neighbours, the CPU's clock) moves more
  slowly than a turn, so it falls on both servers alike: two identical 1-project servers
  measured this way (``--same N``: N rounds of each method, nothing else) read 1.00 with a
  per-round standard deviation of 2-5 %, against 7-16 % for runs one after the other. A second
  pair in each round compares the 1-project server with one hot project of the measured
  server. Each server's share of a core with no request coming in is measured first
  (``--idle`` seconds): that background work is paid per wall-clock second, so by turns (half
  a core) it takes twice its share of the CPU counted, and the table also gives each ratio at
  a whole core, that share taken once (:func:`at_full_core`). With ``--method runs`` (the
  earlier method) each target is instead measured in a ``wrk`` run of its own, compared in
  alternating rounds with the 1-project server (kept running through the whole benchmark, so
  the ratio is measured side by side) and with every request for one project of the same
  server (the machine's other load then moves all three figures alike). Either way each target
  keeps its best round, and the table also gives the median and range of each round's own
  ratio of spread over the 1-project server (three runs seconds apart: the machine's drift
  between rounds cancels out of those). The servers run on one CPU and ``wrk`` on another
  (``taskset``, as ``benchmarks/server.py`` does: ``--server-cpus``, ``--wrk-cpus``, the first
  two CPUs by default), so the load generator never competes with the server it measures, and
  the scheduler never moves a server's event loop away from the caches it has warmed;
* **memory**: with ``--warm server`` (the default) the server builds every project's view
  itself (its background warm-up, ``JWKIT_STATE_CACHE`` at least the size) and the benchmark
  waits for ``/readyz``; the worker's resident set then, and again after a token was requested
  for ``--warm-max`` projects (0: all; each opens its key) and the throughput runs, minus the
  1-project run's, per project: the steady state of a worker holding every project. The
  throughput runs spread over all projects. With ``--warm http`` (the earlier method) the
  benchmark requests ``--warm-max`` projects itself and spreads the throughput over those.

* **sync pass** (``--sync-pass N``): in process, ``N`` projects cached and a tenth of their keys
  opened, the milliseconds of one change check and of one sync pass with nothing due.

The seeded active keys carry an ``exp`` reservation 4 hours ahead, as a fleet already signing
leaves them: a replica joining it opens a key without a write. (A key with no reservation
costs one write transaction when it is first opened.)

    python benchmarks/scale.py [--db sqlite|postgres] [--sizes 1,100,10000,100000]
                               [--creations 50] [--rotations 5] [--duration 3] [--rounds 2]
                               [--warm server|http] [--warm-max N] [--sync-pass N]
                               [--server-cpus 0] [--wrk-cpus 1] [--method turns|runs]
                               [--turn 0.1] [--idle 20]

``--sizes`` must start with 1 (the baseline). Needs ``wrk``; ``--db postgres`` needs the
PostgreSQL server binaries the suite uses (``tests/support/postgres.py``). Prints a Markdown
table (goals in the last column) and writes it to ``benchmarks/.work/scale-<db>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))  # server.py's pinning, imported too

from server import PIN, Pinning, pinning  # noqa: E402
from tests.support.scale import CLIENT_SECRET, seed_projects  # noqa: E402
from tests.support.serve import ServerProcess, server_env  # noqa: E402

from jwkit.service.runtime import Service  # noqa: E402
from jwkit.service.settings import Settings  # noqa: E402

TOKEN = "bench-admin-token-" + "x" * 24
PREFIX = "proj_seed"
WORK = ROOT / "benchmarks" / ".work"


def _lua(kind: str, count: int) -> str:
    """A wrk script: each request for a project drawn at random."""
    pick = "local n = math.random(0, COUNT - 1)"
    head = f"local COUNT = {count}\nmath.randomseed(os.time())\n"
    if kind == "token":
        return head + (
            "wrk.method = 'POST'\n"
            "wrk.headers['Content-Type'] = 'application/x-www-form-urlencoded'\n"
            "request = function()\n"
            f"  {pick}\n"
            f"  local body = string.format('grant_type=client_credentials&client_id=cli_{PREFIX}"
            f"%08d&client_secret={CLIENT_SECRET}', n)\n"
            f"  local path = string.format('/p/{PREFIX}%08d/oauth2/token', n)\n"
            "  return wrk.format(nil, path, nil, body)\n"
            "end\n"
        )
    suffix = "jwks.json" if kind == "jwks" else "openid-configuration"
    return head + (
        "request = function()\n"
        f"  {pick}\n"
        f"  return wrk.format('GET', string.format('/p/{PREFIX}%08d/.well-known/{suffix}', n))\n"
        "end\n"
    )


RETRIES = [0]


async def _one(client: httpx.AsyncClient, kind: str, pid: str, n: int) -> httpx.Response:
    if kind == "token":
        form = {"grant_type": "client_credentials", "client_secret": CLIENT_SECRET,
                "client_id": f"cli_{PREFIX}{n:08d}"}  # fmt: skip
        return await client.post(f"/p/{pid}/oauth2/token", data=form)
    name = "jwks.json" if kind == "jwks" else "openid-configuration"
    return await client.get(f"/p/{pid}/.well-known/{name}")


async def warm(base: str, size: int, kinds: tuple[str, ...], concurrency: int = 16) -> None:
    """Request every project once for each of ``kinds`` (its first request builds its view;
    its first token opens its key)."""
    todo = iter(range(size))
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:

        async def worker() -> None:
            for n in todo:
                pid = f"{PREFIX}{n:08d}"
                for kind in kinds:
                    for attempt in range(3):  # a keep-alive connection the server just closed
                        try:
                            r = await _one(client, kind, pid, n)
                            break
                        except httpx.TransportError:
                            RETRIES[0] += 1
                            if attempt == 2:
                                raise
                    if r.status_code != 200:
                        raise SystemExit(f"{kind} of {pid}: {r.status_code} {r.text[:200]}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def wrk(url: str, script: str, seconds: float, work: Path) -> tuple[float, int]:
    """Requests per second and the number of non-2xx answers."""
    path = work / f"wrk-{abs(hash(script))}.lua"
    path.write_text(script)
    out = subprocess.run(
        [*PIN.wrk, "wrk", "-t1", "-c16", f"-d{max(1, round(seconds))}s", "-s", str(path), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rate, int(bad.group(1)) if bad else 0


def family(pid: int) -> list[int]:
    """``pid`` and its children (``jwkit serve`` and, with several workers, its workers)."""
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return pids


def cpu_ns(pids: list[int]) -> int:
    """Nanoseconds ``pids`` have run on a CPU, every thread they ever had included (the
    process CPU clock, ``clock_getcpuclockid``: a sum over ``/proc/*/task`` would lose the
    time of a thread that exits meanwhile, such as an idle worker thread reaped); a pid gone
    counts 0."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    total = 0
    for pid in pids:
        clock = ctypes.c_int()
        if libc.clock_getcpuclockid(pid, ctypes.byref(clock)) != 0:
            continue
        with contextlib.suppress(OSError):
            total += time.clock_gettime_ns(clock.value)
    return total


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def take_turns(groups: list[list[int]], done: Callable[[], bool], turn: float) -> int:
    """Let one group of processes run at a time, each for ``turn`` seconds in order, the
    others stopped (``SIGSTOP``), until ``done()``; every group runs again on return, also
    on an error. The number of turns given."""
    import signal

    turns = 0
    try:
        for group in groups[1:]:
            _signal(group, signal.SIGSTOP)
        current = 0
        while not done():
            time.sleep(turn)
            nxt = (current + 1) % len(groups)
            _signal(groups[current], signal.SIGSTOP)
            _signal(groups[nxt], signal.SIGCONT)
            current = nxt
            turns += 1
    finally:
        for group in groups:
            _signal(group, signal.SIGCONT)
    return turns


def idle_share(servers: list[ServerProcess], seconds: float, windows: int = 5) -> list[float]:
    """The share of a core each of ``servers`` takes with no request coming in (its change
    checks, syncs and safety-net slices): the median of ``windows`` windows over ``seconds``
    in all, the same for every server, so that a one-off (the heap moved into huge pages after
    the warm-up, a safety-net round starting) does not count as steady background work."""
    groups = [family(server.proc.pid) for server in servers]  # type: ignore[union-attr]
    shares: list[list[float]] = [[] for _ in groups]
    for _ in range(windows):
        before = [cpu_ns(g) for g in groups]
        t0 = time.monotonic()
        time.sleep(seconds / windows)
        wall = time.monotonic() - t0
        for got, g, b in zip(shares, groups, before, strict=True):
            got.append((cpu_ns(g) - b) / 1e9 / wall)
    return [statistics.median(got) for got in shares]


def at_full_core(done: int, used: float, wall: float, idle: float) -> float:
    """Requests per CPU-second of a server given a whole core, from a run by turns: ``done``
    requests in ``used`` CPU-seconds over ``wall`` seconds, the server taking ``idle`` of a
    core for its background work (:func:`idle_share`). That work is paid per wall-clock
    second, so by turns (half a core) it takes twice its share of the CPU counted; with a
    whole core, ``idle`` of each second goes to it and the rest to requests costing
    ``(used - idle * wall) / done`` each."""
    work = used - idle * wall
    return (1 - idle) * done / work if work > 0 and done else 0.0


def wrk_turns(
    loads: list[tuple[ServerProcess, str]],
    seconds: float,
    turn: float,
    work: Path,
    idle: list[float] | None = None,
) -> list[tuple[float, int, float]]:
    """Each server loaded by its own ``wrk`` at once, the servers taking turns on their CPU
    (:func:`take_turns`, ``turn`` seconds each): requests per second *of the server's CPU
    time*, non-2xx answers, and the rate at a whole core (:func:`at_full_core`, from each
    server's ``idle`` share; the plain rate without it), per server. Machine noise slower
    than a turn (the host's neighbours, the CPU's clock) then falls on every server alike."""
    groups = [family(server.proc.pid) for server, _ in loads]  # type: ignore[union-attr]
    before = [cpu_ns(g) for g in groups]
    t0 = time.monotonic()
    # Each wrk its own script file, all written before any wrk starts: a file rewritten while
    # another wrk reads it can be read empty, and wrk then requests ``/``.
    paths = [work / f"wrk-turns-{n}.lua" for n in range(len(loads))]
    for path, (_, script) in zip(paths, loads, strict=True):
        path.write_text(script)
    procs = [
        subprocess.Popen(
            [*PIN.wrk, "wrk", "-t1", "-c16", f"-d{max(1, round(seconds))}s", "-s", str(path),
             server.url],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for (server, _), path in zip(loads, paths, strict=True)
    ]  # fmt: skip
    take_turns(groups, lambda: all(p.poll() is not None for p in procs), turn)
    out = []
    shares = idle or [0.0] * len(loads)
    for proc, group, start, share in zip(procs, groups, before, shares, strict=True):
        text, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"wrk failed: {err[-500:]}")
        done = int(re.search(r"(\d+) requests in", text).group(1))  # type: ignore[union-attr]
        bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
        used = (cpu_ns(group) - start) / 1e9
        wall = time.monotonic() - t0  # the span of the CPU clock's two readings
        rate = done / used if used > 0 else 0.0
        out.append((rate, int(bad.group(1)) if bad else 0, at_full_core(done, used, wall, share)))
    return out


def pin(pid: int) -> None:
    """Every thread of ``pid`` and of its children on the servers' CPUs (``PIN.server``);
    threads started later inherit it from the thread that starts them."""
    if not PIN.server:
        return
    for p in family(pid):
        subprocess.run(["taskset", "-a", "-p", "-c", PIN.server[-1], str(p)],
                       capture_output=True, check=True)  # fmt: skip


def wait_ready(url: str, timeout: float) -> None:
    """Until ``/readyz`` answers 200 (the server's warm-up built every project's view)."""
    deadline = time.perf_counter() + timeout
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        if time.perf_counter() > deadline:
            raise SystemExit(f"{url}/readyz not ready after {timeout:g} s")
        time.sleep(0.1)


def rss_kb(pid: int) -> int:
    """The largest resident set among ``pid`` and its children (the worker), in KiB."""
    best = 0
    for p in family(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    best = max(best, int(line.split()[1]))
    return best


@contextlib.contextmanager
def database(kind: str, home: Path) -> Iterator[str | None]:
    if kind == "sqlite":
        yield None
        return
    from tests.support.postgres import fresh_database, own_postgres_server

    with own_postgres_server() as cluster:
        yield fresh_database(cluster.server, prefix="scale")


@contextlib.contextmanager
def serving(
    kind: str, size: int, args: argparse.Namespace, work: Path, result: dict[str, Any]
) -> Iterator[tuple[ServerProcess, dict[str, str], Path]]:
    """A fresh database seeded with ``size`` projects and ``jwkit serve`` on it (its seed,
    open and start-up times go into ``result``)."""
    home = Path(tempfile.mkdtemp(prefix=f"scale-{size}-", dir=work))
    with database(kind, home) as url:
        extra = {"JWKIT_DATABASE_URL": url} if url else {}
        settings = Settings(home=home / ".jwkit", database_url=url, admin_token=SecretStr(TOKEN),
                            scheduler_interval=0)  # fmt: skip
        service = Service.open(settings)
        t0 = time.perf_counter()
        now = int(time.time())  # keys already reserved ahead, as by a fleet that signs
        seed_projects(service.db, service.vault, size, now=now, prefix=PREFIX, clients=True,
                      max_exp=now + 4 * 3600)  # fmt: skip
        result["seed_s"] = round(time.perf_counter() - t0, 1)
        service.close()
        t0 = time.perf_counter()
        service = Service.open(settings)
        result["open_s"] = round(time.perf_counter() - t0, 2)
        service.close()
        env = server_env(home, admin_token=TOKEN, admin_password="bench-password-1234", **extra)
        env["JWKIT_SCHEDULER_INTERVAL"] = "0"
        env["JWKIT_STATE_CACHE"] = str(max(size + args.creations + 10, 100_000))
        a = ServerProcess(home, env)
        t0 = time.perf_counter()
        a.start()
        result["startup_s"] = round(time.perf_counter() - t0, 2)
        pin(a.proc.pid)  # type: ignore[union-attr]
        try:
            yield a, env, home
        except BaseException:
            print(a.log()[-3000:], file=sys.stderr)
            raise
        finally:
            a.stop()


def run_size(
    kind: str,
    size: int,
    args: argparse.Namespace,
    work: Path,
    baseline: ServerProcess | None = None,
) -> dict[str, Any]:
    """One size, measured; ``baseline`` is the 1-project server, measured side by side
    (in the same rounds) for the throughput ratios."""
    result: dict[str, Any] = {"projects": size}
    with serving(kind, size, args, work, result) as (a, env, home):
        measure(a, env, home, size, args, work, result, baseline)
    result["warm_retries"] = RETRIES[0]
    return result


def settle_postgres(url: str) -> float:
    """Vacuum and checkpoint now what the warm-up wrote (a block of status indices and the
    issuance records of 100,000 projects), so that the server's maintenance of those writes
    (autovacuum, the next checkpoint) does not run on the two cores during the throughput
    rounds that follow; seconds taken."""
    import psycopg

    t0 = time.perf_counter()
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"),
                         autocommit=True) as conn:  # fmt: skip
        conn.execute("VACUUM (ANALYZE)")
        conn.execute("CHECKPOINT")
    return round(time.perf_counter() - t0, 1)


def measure(
    a: ServerProcess,
    env: dict[str, str],
    home: Path,
    size: int,
    args: argparse.Namespace,
    work: Path,
    result: dict[str, Any],
    baseline: ServerProcess | None,
) -> None:
    """Everything but start-up, on the running server ``a``."""
    rss0 = rss_kb(a.proc.pid)  # type: ignore[union-attr]
    result["rss_start_kb"] = rss0
    base = a.url
    warmed = result["warmed"] = min(size, args.warm_max or size)
    t0 = time.perf_counter()
    if args.warm == "server":
        # the server's own warm-up builds every view; /readyz says when
        wait_ready(base, args.ready_timeout)
        result["ready_s"] = round(time.perf_counter() - t0 + result["startup_s"], 2)
        result["rss_ready_kb"] = rss_kb(a.proc.pid)  # type: ignore[union-attr]
        result["rss_docs_kb"] = result["rss_ready_kb"]
        spread = size
    else:  # every requested project requested once: its views built
        asyncio.run(warm(base, warmed, ("jwks", "discovery")))
        result["rss_docs_kb"] = rss_kb(a.proc.pid)  # type: ignore[union-attr]
        spread = warmed
    asyncio.run(warm(base, warmed, ("token",)))  # and its key opened
    result["rss_warm_kb"] = rss_kb(a.proc.pid)  # type: ignore[union-attr]
    if env.get("JWKIT_DATABASE_URL"):
        result["settle_s"] = settle_postgres(env["JWKIT_DATABASE_URL"])
    result["warm_s"] = round(time.perf_counter() - t0, 1)
    result["spread"] = spread
    idle = (0.0, 0.0)
    if args.method == "turns" and baseline is not None:
        # both servers' background work per wall-clock second, for the rates at a whole core
        base_share, share = idle_share([baseline, a], args.idle)
        idle = (base_share, share)
        result["idle_share"] = [round(base_share, 4), round(share, 4)]
    for kind_ in ("jwks", "discovery", "token"):
        # rounds alternate the 1-project server, one hot project and all projects on this
        # server (the machine's neighbours move all three alike); each keeps its best round
        targets = [("one", 1, a), ("all", spread, a)]
        if baseline is not None:
            targets.insert(0, ("base", 1, baseline))
        best = {"base": 0.0, "one": 0.0, "all": 0.0}
        bad = 0
        rounds = []
        full = []
        for n in range(args.rounds):
            if args.method == "turns" and baseline is not None:
                got, at_core = turn_round(baseline, a, kind_, spread, n, args, work, idle)
                bad += got.pop("bad")
                for over, rate in got.items():
                    best[over] = max(best[over], rate)
                rounds.append(got)
                full.append(at_core)
                continue
            got = {}
            # every other round in reverse order: a drift of the machine during a round
            # favours each target alike over the run
            for over, count, server in targets if n % 2 == 0 else targets[::-1]:
                rate, failed = wrk(server.url, _lua(kind_, count), args.duration, work)
                best[over] = max(best[over], rate)
                got[over] = round(rate)
                bad += failed if over != "base" else 0
            rounds.append(got)
        # each round's own ratio (its three runs are seconds apart): the machine's drift
        # between rounds cancels out of these, which the best rounds above do not promise
        result[f"{kind_}_rounds"] = rounds
        if full:
            result[f"{kind_}_rounds_full"] = full
        result["method"] = args.method if baseline is not None else "runs"
        result[f"{kind_}_rps"] = round(best["all"])
        result[f"{kind_}_one_rps"] = round(best["one"])
        result[f"{kind_}_base_rps"] = round(best["base"] if baseline else best["all"])
        result[f"{kind_}_bad"] = bad
    result["rss_steady_kb"] = rss_kb(a.proc.pid)  # type: ignore[union-attr]
    with httpx.Client(base_url=base, timeout=30,
                      headers={"Authorization": f"Bearer {TOKEN}"}) as api:  # fmt: skip
        t0 = time.perf_counter()
        for n in range(args.creations):
            r = api.post("/api/v1/projects", json={"name": f"bench {n}"})
            assert r.status_code == 201, r.text
        result["creations_per_s"] = round(args.creations / (time.perf_counter() - t0), 1)
        if args.rotations:
            b = ServerProcess(home, env).start()
            try:
                wait_ready(b.url, args.ready_timeout)  # B holds every project
                result["rotation_visible_s"] = rotations(api, b.url, size, args.rotations)
            finally:
                b.stop()


def turn_round(
    baseline: ServerProcess,
    a: ServerProcess,
    kind: str,
    spread: int,
    n: int,
    args: argparse.Namespace,
    work: Path,
    idle: tuple[float, float] = (0.0, 0.0),
) -> tuple[dict[str, int], dict[str, int]]:
    """One round by turns (``--method turns``): the 1-project server and this one loaded at
    once and taking turns on the CPU, requests spread over all projects; then again with
    every request for one project of this server. Requests per CPU-second; the hot project's
    rate is scaled by the 1-project server's two rates, so that all three share its scale.
    Then the same at a whole core (:func:`at_full_core`, ``idle`` the two servers' shares),
    with the failed requests (``bad``) counted in the first only."""
    one = _lua(kind, 1)
    pairs = []
    for script in (_lua(kind, spread), one):
        loads = [(baseline, one), (a, script)]
        shares = list(idle)
        if n % 2:  # every other round the other server takes the first turn
            loads.reverse()
            shares.reverse()
        got = wrk_turns(loads, args.duration, args.turn, work, shares)
        pairs.append(got[::-1] if n % 2 else got)
    (base, _, base_f), (spread_rate, bad_all, spread_f) = pairs[0]
    (base2, _, base2_f), (hot, bad_one, hot_f) = pairs[1]
    return {
        "base": round(base),
        "one": round(hot * base / base2) if base2 else 0,
        "all": round(spread_rate),
        "bad": bad_all + bad_one,
    }, {
        "base": round(base_f),
        "one": round(hot_f * base_f / base2_f) if base2_f else 0,
        "all": round(spread_f),
    }


def rotations(api: httpx.Client, other: str, size: int, times: int) -> list[float]:
    seen = []
    with httpx.Client(base_url=other, timeout=10) as pub:
        for n in range(times):
            pid = f"{PREFIX}{(n * 7919) % size:08d}"
            before = pub.get(f"/p/{pid}/.well-known/jwks.json")  # B holds the project now
            assert before.status_code == 200, before.text
            r = api.post(f"/api/v1/projects/{pid}/keys/rotate", json={"emergency": True})
            assert r.status_code == 200, r.text
            t0 = time.perf_counter()
            new = r.json()["next"]
            while True:
                kids = [k["kid"] for k in pub.get(f"/p/{pid}/.well-known/jwks.json").json()["keys"]]
                if new in kids:
                    break
                if time.perf_counter() - t0 > 30:
                    raise SystemExit(f"rotation not visible on replica B after 30 s ({pid})")
                time.sleep(0.01)
            seen.append(round(time.perf_counter() - t0, 3))
    return seen


def heap_per_project(count: int, work: Path) -> dict[str, float]:
    """Python heap bytes per project (``tracemalloc``, in process, no allocator slack): the id
    index, a built view, an opened key (its Python side; OpenSSL's own memory is not seen)."""
    import gc
    import tracemalloc

    home = Path(tempfile.mkdtemp(prefix="heap-", dir=work))
    settings = Settings(home=home, admin_token=SecretStr(TOKEN), scheduler_interval=0)
    service = Service.open(settings)
    now = int(time.time())
    ids = seed_projects(service.db, service.vault, count, now=now, prefix=PREFIX,
                        max_exp=now + 3600)  # fmt: skip

    def measure(step: Any) -> float:
        gc.collect()
        before = tracemalloc.take_snapshot()
        step()
        gc.collect()
        after = tracemalloc.take_snapshot()
        return sum(d.size_diff for d in after.compare_to(before, "filename")) / count

    tracemalloc.start()
    try:
        out = {
            "ids": measure(service.state.reload),
            "view": measure(lambda: [service.state.projects.get(p) for p in ids]),
            "key": measure(lambda: [service.state.projects[p].token_signer for p in ids]),
        }
    finally:
        tracemalloc.stop()
        service.close()
    return {k: round(v) for k, v in out.items()}


def sync_pass_cost(count: int, opened: int, work: Path) -> dict[str, float]:
    """In process, ``count`` projects all cached and ``opened`` of their keys opened: the
    milliseconds of one change check and of one sync pass with nothing due (each averaged)."""
    home = Path(tempfile.mkdtemp(prefix="sync-", dir=work))
    settings = Settings(home=home, admin_token=SecretStr(TOKEN), scheduler_interval=0)
    service = Service.open(settings)
    now = int(time.time())
    ids = seed_projects(service.db, service.vault, count, now=now, prefix=PREFIX,
                        max_exp=now + 3600)  # fmt: skip
    state = service.state
    try:
        state.reload()
        state.warm()
        for pid in ids[:opened]:
            assert state.projects[pid].token_signer is not None

        def per_call(step: Any, times: int) -> float:
            t0 = time.perf_counter()
            for _ in range(times):
                step()
            return round((time.perf_counter() - t0) / times * 1000, 3)

        return {"check_ms": per_call(state.check, 1000), "sync_ms": per_call(state.sync, 200)}
    finally:
        service.close()


def paired(rounds: list[dict[str, int]] | None) -> str:
    """The median and range of the per-round ratios all/base (rounds with a baseline), and
    from nine rounds on, how far that median can be trusted: the 95 % interval of the medians
    of 2,000 resamples of the rounds (a bootstrap, seeded: the same rounds give the same
    text)."""
    ratios = sorted(r["all"] / r["base"] for r in rounds or () if r.get("base"))
    if len(ratios) < 2:
        return ""
    mid = statistics.median(ratios)
    text = f"; rounds {mid:.2f}x median, {ratios[0]:.2f}-{ratios[-1]:.2f}"
    if len(ratios) >= 9:
        draw = random.Random(0).choices
        medians = sorted(statistics.median(draw(ratios, k=len(ratios))) for _ in range(2000))
        text += f" (median's 95 % interval {medians[50]:.2f}-{medians[1949]:.2f})"
    return text


def table(kind: str, rows: list[dict[str, Any]]) -> str:
    base = rows[0]
    hundred = next((r for r in rows if r["projects"] == 100), None)
    lines = [
        f"| {kind} | " + " | ".join(f"{r['projects']:,}" for r in rows) + " | goal |",
        "|---|" + "---|" * (len(rows) + 1),
    ]

    def row(label: str, cells: list[str], goal: str) -> None:
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {goal} |")

    row("seed (direct insert, s)", [str(r["seed_s"]) for r in rows], "")
    row("replica start-up: spawn to /healthz (s)", [str(r["startup_s"]) for r in rows], "≤ 10 s")
    row("Service.open in process (s)", [str(r["open_s"]) for r in rows], "")
    cr = [r.get("creations_per_s") for r in rows]
    ref = hundred["creations_per_s"] if hundred else None
    row("project creations/s (admin API)",
        [f"{c}" + (f" ({c / ref:.2f}x)" if ref and c else "") for c in cr],
        "≥ 0.8 x the rate at 100")  # fmt: skip
    for name in ("jwks", "discovery", "token"):
        cells = []
        for r in rows:
            rate, one = r[f"{name}_rps"], r[f"{name}_one_rps"]
            bad = r[f"{name}_bad"]
            ref = r.get(f"{name}_base_rps", base[f"{name}_rps"])
            full = paired(r.get(f"{name}_rounds_full")).removeprefix("; rounds ")
            cells.append(
                f"{rate:,} ({rate / ref:.2f}x; {rate / one:.2f}x one project)"
                + paired(r.get(f"{name}_rounds"))
                + (f"; at a whole core {full}" if full else "")
                + (f" {bad} bad" if bad else "")
            )
        per = "CPU-second, by turns" if rows[-1].get("method") == "turns" else "s"
        row(
            f"{name} req/{per}, spread over all projects (vs the 1-project server in the same "
            "rounds; vs one hot project on the same server)",
            cells,
            "≥ 0.9 x 1 project",
        )
    if any("idle_share" in r for r in rows):
        row("share of a core with no request (the 1-project server's; this server's)",
            [(f"{r['idle_share'][0]:.2%}; {r['idle_share'][1]:.2%}" if "idle_share" in r
              else "") for r in rows], "")  # fmt: skip
    if "rss_ready_kb" in base:  # --warm server: every project held, per project
        ready = [r.get("ready_s") for r in rows]
        row("replica ready: spawn to /readyz, every project's view built (s)",
            [str(t) for t in ready], "")  # fmt: skip
        for key, label in (
            ("rss_ready_kb", "worker RSS at /readyz (every view built, no key opened)"),
            ("rss_steady_kb", "worker RSS, steady state (every view; keys opened by the token "
             "warm-up and runs)"),
        ):  # fmt: skip
            cells = []
            for r in rows:
                cell = f"{r[key] / 1024:.0f} MiB"
                if r["projects"] > 1:
                    per = (r[key] - base[key]) / (r["projects"] - 1)
                    cell += f", {per:.2f} KiB/project"
                cells.append(cell)
            row(label + ", minus the 1-project run's, per project", cells, "≤ 8 KB/project")
        row("projects whose key was opened by the token warm-up",
            [f"{r['warmed']:,}" for r in rows], "")  # fmt: skip
        vis = [r.get("rotation_visible_s") for r in rows]
        row("rotation visible on replica B (s, max)", [str(max(v)) if v else "" for v in vis],
            "≤ 1 s")  # fmt: skip
        return "\n".join(lines)
    cells = []
    for r in rows:
        if r["projects"] == 1:
            cells.append(f"{r['rss_warm_kb'] / 1024:.0f} MiB")
        else:
            idle = (r["rss_start_kb"] - base["rss_start_kb"]) / (r["projects"] - 1)
            per = (r["rss_warm_kb"] - r["rss_start_kb"]) / max(1, r["warmed"] - 1) + idle
            note = "" if r["warmed"] == r["projects"] else f" ({r['warmed']:,} requested)"
            cells.append(f"{r['rss_warm_kb'] / 1024:.0f} MiB, {per:.1f} KiB/project{note}")
    row("worker RSS, every project requested (JWKS, discovery, a token)", cells,
        "≤ 8 KB/project")  # fmt: skip
    cells = []
    for r in rows:
        idle = (r["rss_start_kb"] - base["rss_start_kb"]) / max(1, r["projects"] - 1)
        per = (r["rss_docs_kb"] - r["rss_start_kb"]) / max(1, r["warmed"] - 1)
        cells.append("" if r["projects"] == 1 else f"{idle:.2f} + {per:.1f} KiB/project")
    row("of which: ids at start-up + documents (before any token)", cells, "")
    vis = [r.get("rotation_visible_s") for r in rows]
    row("rotation visible on replica B (s, max)", [str(max(v)) if v else "" for v in vis], "≤ 1 s")
    return "\n".join(lines)


def same_servers(rounds: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """``--same N``: two identical 1-project servers, ``rounds`` rounds of each method on
    JWKS and tokens; what each method reads for a ratio that is 1 (its per-round standard
    deviation is its noise)."""
    out: dict[str, Any] = {}
    r1: dict[str, Any] = {}
    r2: dict[str, Any] = {}
    with (
        serving("sqlite", 1, args, work, r1) as (a, _, _),
        serving("sqlite", 1, args, work, r2) as (b, _, _),
    ):
        asyncio.run(warm(a.url, 1, ("token",)))
        asyncio.run(warm(b.url, 1, ("token",)))
        for kind in ("jwks", "token"):
            script = _lua(kind, 1)
            runs, turns = [], []
            for n in range(rounds):
                order = [a, b] if n % 2 == 0 else [b, a]
                rate = {id(s): wrk(s.url, script, args.duration, work)[0] for s in order}
                runs.append(rate[id(b)] / rate[id(a)])
                got = wrk_turns([(s, script) for s in order], 2 * args.duration, args.turn, work)
                by = dict(zip((id(s) for s in order), (g[0] for g in got), strict=True))
                turns.append(by[id(b)] / by[id(a)])
            for name, ratios in (("runs", runs), ("turns", turns)):
                out[f"{kind}_{name}"] = {
                    "median": round(statistics.median(ratios), 3),
                    "stdev": round(statistics.pstdev(ratios), 3),
                    "range": [round(min(ratios), 3), round(max(ratios), 3)],
                    "interval": paired([{"base": 10**6, "all": round(10**6 * x)} for x in ratios]),
                }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--sizes", default="1,100,10000")
    parser.add_argument("--creations", type=int, default=50)
    parser.add_argument("--rotations", type=int, default=5)
    parser.add_argument("--duration", type=float, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--method",
        choices=("turns", "runs"),
        default="turns",
        help="turns: each round loads the 1-project server and the measured one at once, "
        "taking turns on the CPU (--turn seconds each), per CPU-second; runs: one wrk run "
        "after another, per second",
    )
    parser.add_argument("--turn", type=float, default=0.1, help="seconds per turn")
    parser.add_argument("--idle", type=float, default=20,
                        help="seconds over which each server's background share of a core is "
                        "measured, with no request, before the rounds by turns")  # fmt: skip
    parser.add_argument("--same", type=int, default=0,
                        help="only compare the two methods on two identical 1-project servers, "
                        "this many rounds each")  # fmt: skip
    parser.add_argument("--heap", type=int, default=3000, help="projects for the heap count")
    parser.add_argument(
        "--warm",
        choices=("server", "http"),
        default="server",
        help="server: the server's warm-up builds every view (wait for /readyz), throughput "
        "spread over all projects; http: the benchmark requests --warm-max projects itself",
    )
    parser.add_argument(
        "--warm-max",
        type=int,
        default=0,
        help="request a token (open the key) of at most this many projects before measuring "
        "(0: all); with --warm http also their documents, and throughput is spread over those",
    )
    parser.add_argument("--sync-pass", type=int, default=0,
                        help="also time a change check and an idle sync pass, in process, with "
                        "this many projects cached (a tenth of their keys opened)")  # fmt: skip
    parser.add_argument("--server-cpus", default=None,
                        help="CPUs of the measured servers (taskset -c); '' with --wrk-cpus '' "
                        "pins nothing")  # fmt: skip
    parser.add_argument("--wrk-cpus", default=None, help="CPUs of wrk (taskset -c)")
    parser.add_argument("--ready-timeout", type=float, default=1800,
                        help="seconds to wait for /readyz")  # fmt: skip
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    chosen: Pinning = pinning(args.server_cpus, args.wrk_cpus)
    PIN.server, PIN.wrk = chosen.server, chosen.wrk
    if sizes[0] != 1:
        parser.error("--sizes must start with 1 (the baseline)")
    WORK.mkdir(parents=True, exist_ok=True)
    if args.same:
        with tempfile.TemporaryDirectory(dir=WORK) as tmp:
            found = same_servers(args.same, args, Path(tmp))
        for key, value in found.items():
            print(f"{key}: {json.dumps(value)}")
        return 0
    rows = []
    with tempfile.TemporaryDirectory(dir=WORK) as tmp:
        heap = heap_per_project(args.heap, Path(tmp)) if args.heap else None
        print(json.dumps({"heap_bytes_per_project": heap}), flush=True)
        if args.sync_pass:
            cost = sync_pass_cost(args.sync_pass, args.sync_pass // 10, Path(tmp))
            print(json.dumps({"sync_pass": {"projects": args.sync_pass, **cost}}), flush=True)
        # The 1-project server keeps running: each size's throughput rounds measure it side by
        # side with that size's server (after its own run it holds the --creations projects
        # too; the rounds request its first project only, as in its own run).
        first: dict[str, Any] = {"projects": 1}
        with serving(args.db, 1, args, Path(tmp), first) as (one, env, home):
            measure(one, env, home, 1, args, Path(tmp), first, None)
            first["warm_retries"] = RETRIES[0]
            print(json.dumps(first), flush=True)
            rows.append(first)
            for size in sizes[1:]:
                row = run_size(args.db, size, args, Path(tmp), baseline=one)
                print(json.dumps(row), flush=True)
                rows.append(row)
    (WORK / f"scale-{args.db}.json").write_text(json.dumps({"heap": heap, "rows": rows}, indent=1))
    print(table(args.db, rows))
    if heap:
        print(f"\nPython heap per project ({args.heap:,} projects, tracemalloc): {heap}")
    cpus = (PIN.server[-1:] or ["any"]) + (PIN.wrk[-1:] or ["any"])
    pinned = f"servers on CPU {cpus[0]}, wrk on CPU {cpus[1]}"
    print(f"\n{os.cpu_count()} CPUs ({pinned}); wrk -t1 -c16, {args.duration:g} s per target")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
