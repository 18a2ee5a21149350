"""Soak: minutes of mixed load against a real ``jwkit serve``; every unexpected answer counted,
and the server's memory watched.

One ``jwkit serve`` (SQLite in a temporary ``JWKIT_HOME``, one worker) gets, from
``--concurrency`` client threads at about ``--rate`` requests per second in all:

* JWKS and discovery documents (a third of them conditional, where 304 is asked for);
* tokens from the token endpoint (``client_credentials``), one in ten verified with
  :class:`jwkit.Verifier` against the live JWKS (honouring its max-age: no unknown ``kid``
  may ever be met), and a few with a wrong secret (401 asked for);
* admin reads (keys, events) and writes: clients created and deleted, a project renamed,
  throwaway projects created and deleted;
* a graceful rotation of each project every ``--rotate-every`` seconds (the projects' JWKS
  max-age is 5 s, so a rotation is always due: a 409 would be a finding).

Every answer outside what the request asked for (2xx, or the 304/401 asked for) counts as
*unexpected*, as do transport errors and tokens the verifier rejects. The server's RSS (its
whole process group, from ``/proc``) is sampled every few seconds; the figure that matters is
the last sample against the first one after ``--warmup`` seconds.

    python benchmarks/soak.py [--minutes 10] [--warmup 60] [--rate 250] [--concurrency 4]
                              [--json soak.json]

Exit status 1 when anything unexpected happened or the final RSS is more than 10 % above the
post-warm-up RSS. The summary's figures go in ``docs/reliability.md`` ("Soak").
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from jwkit import JWKitError, Verifier  # noqa: E402

ADMIN_TOKEN = "soak-admin-token-" + base64.urlsafe_b64encode(os.urandom(12)).decode()
RSS_LIMIT = 1.10


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def group_rss(leader: int) -> int:
    """Resident memory (bytes) of every process in ``leader``'s process group."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                stat = f.read()
            if int(stat[stat.rindex(")") + 2 :].split()[2]) != leader:
                continue
            with open(f"/proc/{entry.name}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            continue
    return total


@contextlib.contextmanager
def jwkit_serve(home: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWKIT_")}
    env.update(
        PYTHONPATH=str(ROOT / "src"),
        JWKIT_HOME=str(home / ".jwkit"),
        JWKIT_ADMIN_TOKEN=ADMIN_TOKEN,
        JWKIT_ADMIN_PASSWORD="soak-" + ADMIN_TOKEN,
        JWKIT_LOG_LEVEL="warning",
    )
    command = [sys.executable, "-m", "jwkit.cli", "serve", "--port", str(port)]
    with open(home / "serve.log", "wb") as log:
        proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=home,
            start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"jwkit serve exited:\n{(home / 'serve.log').read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit("jwkit serve did not become ready")
            time.sleep(0.2)
        yield proc, base
    finally:
        for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue


@dataclass
class Project:
    id: str
    issuer: str
    client_id: str
    client_secret: str
    verifier: Verifier


@dataclass
class Tally:
    """What happened, shared by the client threads (one lock, held briefly)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: Counter[str] = field(default_factory=Counter)
    unexpected: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    verified: int = 0
    rotations: int = 0

    def count(self, kind: str) -> None:
        with self.lock:
            self.requests[kind] += 1

    def bad(self, kind: str, what: str) -> None:
        with self.lock:
            self.unexpected[f"{kind} {what.split(':')[0]}"] += 1
            if len(self.examples) < 20:
                self.examples.append(f"{kind}: {what}"[:300])


def setup(base: str) -> tuple[httpx.Client, list[Project]]:
    admin = httpx.Client(
        base_url=base, timeout=30, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    projects = []
    for alg in ("ES256", "EdDSA"):
        made = admin.post(
            "/api/v1/projects",
            json={"name": f"soak {alg}", "algorithm": alg, "jwks_max_age": 5, "token_ttl": 120},
        )
        made.raise_for_status()
        project = made.json()
        client = admin.post(
            f"/api/v1/projects/{project['id']}/clients", json={"name": "soak", "scopes": ["read"]}
        )
        client.raise_for_status()
        verifier = Verifier.from_jwks_url(
            f"{base}/p/{project['id']}/.well-known/jwks.json",
            issuer=project["issuer"],
            algorithms=[alg],
            allow_insecure_http=True,
            # Honour the JWKS max-age (5 s) rather than the 60 s floor: the service promises
            # that a key is published for max-age before it signs, so this verifier must
            # never meet an unknown kid, however often the projects rotate.
            min_ttl=1.0,
        )
        projects.append(
            Project(
                project["id"],
                project["issuer"],
                client.json()["client_id"],
                client.json()["client_secret"],
                verifier,
            )
        )
    return admin, projects


def client_loop(
    base: str, projects: list[Project], tally: Tally, stop: threading.Event, interval: float
) -> None:
    """One client thread: a weighted random mix of requests, paced at ``interval`` seconds."""
    rng = random.Random()
    admin_headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    etags: dict[str, str] = {}
    with httpx.Client(base_url=base, timeout=30) as http:

        def call(kind: str, expected: tuple[int, ...], send: Callable[[], httpx.Response]) -> Any:
            tally.count(kind)
            try:
                answer = send()
            except httpx.HTTPError as exc:
                tally.bad(kind, f"{type(exc).__name__}: {exc}")
                return None
            if answer.status_code not in expected:
                tally.bad(kind, f"{answer.status_code}: {answer.text[:200]}")
                return None
            return answer

        def documents(project: Project) -> None:
            name = rng.choice(["jwks.json", "jwks.json", "openid-configuration"])
            path = f"/p/{project.id}/.well-known/{name}"
            etag = etags.get(path)
            if etag is not None and rng.random() < 0.33:
                # 304 asked for; 200 when the document changed since (a rotation).
                answer = call(
                    "conditional",
                    (200, 304),
                    lambda: http.get(path, headers={"if-none-match": etag}),
                )
            else:
                answer = call(name, (200,), lambda: http.get(path))
            if answer is not None and answer.status_code == 200:
                etags[path] = answer.headers["etag"]

        def token(project: Project) -> None:
            auth = (project.client_id, project.client_secret)
            form = {"grant_type": "client_credentials", "scope": "read"}
            path = f"/p/{project.id}/oauth2/token"
            answer = call("token", (200,), lambda: http.post(path, data=form, auth=auth))
            if answer is not None and rng.random() < 0.1:
                try:
                    project.verifier.verify(answer.json()["access_token"])
                    with tally.lock:
                        tally.verified += 1
                except JWKitError as exc:
                    tally.bad("verify", f"{exc.code}: {exc}")

        def wrong_secret(project: Project) -> None:
            auth = (project.client_id, "not-the-secret")
            form = {"grant_type": "client_credentials"}
            path = f"/p/{project.id}/oauth2/token"
            call("token-401", (401,), lambda: http.post(path, data=form, auth=auth))

        def admin_read(project: Project) -> None:
            path = rng.choice(["keys", "events", "clients"])
            url = f"/api/v1/projects/{project.id}/{path}"
            call("admin-read", (200,), lambda: http.get(url, headers=admin_headers))

        def admin_write(project: Project) -> None:
            choice = rng.random()
            if choice < 0.5:
                url = f"/api/v1/projects/{project.id}/clients"
                made = call(
                    "client-create",
                    (201,),
                    lambda: http.post(url, json={"name": "tmp"}, headers=admin_headers),
                )
                if made is not None:
                    gone = f"{url}/{made.json()['client_id']}"
                    call("client-delete", (204,), lambda: http.delete(gone, headers=admin_headers))
            elif choice < 0.8:
                url = f"/api/v1/projects/{project.id}"
                body = {"name": f"soak {rng.randrange(1000)}"}
                call(
                    "project-patch",
                    (200,),
                    lambda: http.patch(url, json=body, headers=admin_headers),
                )
            else:
                made = call(
                    "project-create",
                    (201,),
                    lambda: http.post(
                        "/api/v1/projects", json={"name": "throwaway"}, headers=admin_headers
                    ),
                )
                if made is not None:
                    gone = f"/api/v1/projects/{made.json()['id']}"
                    call("project-delete", (204,), lambda: http.delete(gone, headers=admin_headers))

        mix: list[tuple[float, Callable[[Project], None]]] = [
            (0.50, documents),
            (0.35, token),
            (0.04, wrong_secret),
            (0.06, admin_read),
            (0.05, admin_write),
        ]
        actions = [action for _, action in mix]
        weights = [weight for weight, _ in mix]
        next_at = time.monotonic()
        while not stop.is_set():
            rng.choices(actions, weights)[0](rng.choice(projects))
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                stop.wait(delay)
            elif delay < -1:
                next_at = time.monotonic()  # behind: do not burst to catch up


def rotation_loop(
    admin: httpx.Client, projects: list[Project], tally: Tally, stop: threading.Event, every: float
) -> None:
    while not stop.wait(every):
        for project in projects:
            tally.count("rotate")
            try:
                answer = admin.post(f"/api/v1/projects/{project.id}/keys/rotate", json={})
            except httpx.HTTPError as exc:
                tally.bad("rotate", f"{type(exc).__name__}: {exc}")
                continue
            if answer.status_code != 200:
                tally.bad("rotate", f"{answer.status_code}: {answer.text[:200]}")
            else:
                with tally.lock:
                    tally.rotations += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before RSS baseline")
    parser.add_argument("--rate", type=float, default=250.0, help="requests per second, in all")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rotate-every", type=float, default=20.0)
    parser.add_argument("--sample-every", type=float, default=5.0)
    parser.add_argument("--json", type=Path, help="write the summary here too")
    args = parser.parse_args()
    total = args.minutes * 60
    warmup = min(args.warmup, total / 2)

    with (
        tempfile.TemporaryDirectory(prefix="jwkit-soak-") as tmp,
        jwkit_serve(Path(tmp)) as (
            proc,
            base,
        ),
    ):
        admin, projects = setup(base)
        tally = Tally()
        stop = threading.Event()
        interval = args.concurrency / args.rate
        threads = [
            threading.Thread(
                target=client_loop, args=(base, projects, tally, stop, interval), daemon=True
            )
            for _ in range(args.concurrency)
        ]
        threads.append(
            threading.Thread(
                target=rotation_loop,
                args=(admin, projects, tally, stop, args.rotate_every),
                daemon=True,
            )
        )
        started = time.monotonic()
        for thread in threads:
            thread.start()
        samples: list[tuple[float, int]] = []
        baseline: int | None = None
        while (elapsed := time.monotonic() - started) < total:
            if proc.poll() is not None:
                tally.bad("server", f"exited with {proc.returncode}")
                break
            rss = group_rss(proc.pid)
            samples.append((round(elapsed, 1), rss))
            if baseline is None and elapsed >= warmup:
                baseline = rss
            with tally.lock:
                done = sum(tally.requests.values())
                bad = sum(tally.unexpected.values())
            print(
                f"{elapsed:6.0f}s  {done:8d} requests  {bad} unexpected  "
                f"rss {rss / 2**20:6.1f} MiB",
                flush=True,
            )
            time.sleep(min(args.sample_every, max(0.0, total - elapsed)))
        stop.set()
        for thread in threads:
            thread.join(30)
        final = group_rss(proc.pid)
        samples.append((round(time.monotonic() - started, 1), final))
        admin.close()
        for project in projects:
            project.verifier.close()
        log = (Path(tmp) / "serve.log").read_text(errors="replace")

    baseline = baseline or samples[0][1]
    elapsed = samples[-1][0]
    summary = {
        "minutes": round(elapsed / 60, 2),
        "requests": sum(tally.requests.values()),
        "requests_per_second": round(sum(tally.requests.values()) / elapsed, 1),
        "by_kind": dict(sorted(tally.requests.items())),
        "unexpected": sum(tally.unexpected.values()),
        "unexpected_by_kind": dict(tally.unexpected),
        "examples": tally.examples,
        "tokens_verified": tally.verified,
        "rotations": tally.rotations,
        "rss_after_warmup_mib": round(baseline / 2**20, 1),
        "rss_final_mib": round(final / 2**20, 1),
        "rss_max_mib": round(max(rss for _, rss in samples) / 2**20, 1),
        "rss_growth_percent": round((final / baseline - 1) * 100, 1),
        "server_tracebacks": log.count("Traceback"),
    }
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    ok = (
        summary["unexpected"] == 0
        and final <= baseline * RSS_LIMIT
        and summary["server_tracebacks"] == 0
    )
    print("soak: " + ("OK" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
