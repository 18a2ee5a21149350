"""HTTP benchmark of the key service: jwkit vs Node's oidc-provider vs nginx, under wrk.

The servers run side by side on 127.0.0.1, each with the same number of worker processes
(default 1: one uvicorn worker, one Node process, ``worker_processes 1``):

* **nginx** serves jwkit's JWKS bytes as a static file with jwkit's headers (content type,
  ``Cache-Control``, ``Access-Control-Allow-Origin``, an ``ETag``): the floor for a JWKS
  endpoint on this machine. Twice: tuned for one small file (the floor the goal is measured
  against) and with Debian's default file serving settings.
* **uvicorn** running a bare ASGI app that answers the same bytes and headers: not a goal,
  a reference for what the ASGI server alone costs per response.
* **oidc-provider** (the reference OpenID provider for Node, installed by npm under
  ``benchmarks/.work/node``) with two ES256 keys in its JWKS and one client using the client
  credentials grant with ``client_secret_basic``; a resource indicator whose resource server
  asks for RFC 9068 JWT access tokens makes its token endpoint sign a JWT per request.
* **jwkit** (``jwkit serve``, SQLite in a temporary ``JWKIT_HOME``): an ES256 project and an
  OAuth client created through the admin API.

Before any load, every endpoint is checked: a JWKS of public keys, a token response holding
a JWT (jwkit's and oidc-provider's tokens are verified with ``jwkit.Verifier.from_jwks_url``).
Then ``wrk`` visits the targets in turn, round after round; each keeps its best round. Any
error response or socket error fails the run. The server's CPU time per request is taken
from ``/proc`` (the whole process group), a figure that moves less than requests per second
when neighbours share the machine.

The JWKS is also fetched with every request distinct (a counter in the query string, which
every server here ignores), from nginx and jwkit: no two requests are then byte-identical, a
check that neither server's figure depends on requests repeating.

Every server runs on one CPU and ``wrk`` on another (``taskset``, the same two CPUs for every
target), so the load generator never competes with the server it measures and each server,
Node's helper threads and nginx's master included, gets the same single CPU.

    python benchmarks/server.py [--duration 3] [--rounds 5] [--connections 32]
                                [--threads 1] [--workers 1] [--warmup 1]
                                [--server-cpus 0] [--wrk-cpus 1]

It needs ``wrk``, ``nginx`` and ``node`` (Debian: ``apt-get install wrk nginx nodejs npm``);
oidc-provider is installed with npm on first use.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "benchmarks"
NODE_PREFIX = HERE / ".work" / "node"
OIDC_PROVIDER = "oidc-provider@9.13.3"
OIDC_ENTRY = NODE_PREFIX / "node_modules" / "oidc-provider" / "lib" / "index.js"
ADMIN_TOKEN = "bench-admin-token-" + base64.urlsafe_b64encode(os.urandom(12)).decode()
RESOURCE = "urn:jwkit-bench:api"
SCOPE = "read"

GOALS = (  # (target, endpoint, against, minimum ratio), from issue 5
    ("jwkit", "jwks", "oidc-provider", 2.5),
    ("jwkit", "jwks", "nginx", 0.4),
    ("jwkit", "token", "oidc-provider", 1.5),
)
# (target, endpoint, against target, against endpoint, minimum ratio), from issue 12: a token
# carrying a status claim vs the same token without one (a project with token_status off),
# and the Status List Token endpoint vs nginx serving the same bytes.
STATUS_GOALS = (
    ("jwkit", "token", "jwkit", "token-nostatus", 0.9),
    ("jwkit", "statuslist", "nginx", "statuslist", 0.5),
)


class BenchError(SystemExit):
    def __init__(self, message: str) -> None:
        super().__init__(f"server.py: {message}")


@dataclass
class Pinning:
    """``taskset`` prefixes for the servers' and wrk's commands (empty: not pinned)."""

    server: list[str] = field(default_factory=list)
    wrk: list[str] = field(default_factory=list)


PIN = Pinning()


def pinning(server_cpus: str | None, wrk_cpus: str | None) -> Pinning:
    """Servers on ``server_cpus``, wrk on ``wrk_cpus``; by default the first two CPUs this
    process may use. ``""`` for both turns pinning off."""
    usable = sorted(os.sched_getaffinity(0))
    if server_cpus is None and wrk_cpus is None:
        if len(usable) < 2 or not shutil.which("taskset"):
            return Pinning()
        server_cpus, wrk_cpus = str(usable[0]), str(usable[1])
    return Pinning(
        ["taskset", "-c", server_cpus] if server_cpus else [],
        ["taskset", "-c", wrk_cpus] if wrk_cpus else [],
    )


# -- processes -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    command: list[str]

    def cpu_seconds(self) -> float:
        """User + system CPU of every live process in the server's process group."""
        ticks = 0
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == self.proc.pid:  # pgrp
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-2000:]
        return ""


@contextlib.contextmanager
def start(
    name: str, command: list[str], log: Path, port: int, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """Start ``command`` in its own process group, wait for ``port``, stop the group after."""
    command = PIN.server + command  # taskset execs the server: same pid, same group
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            cwd=ROOT,
        )
    server = Server(name, proc, log, command)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise BenchError(f"{name} exited with {proc.returncode}:\n{server.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline:
                raise BenchError(f"{name} did not listen on {port}:\n{server.log_tail()}")
            time.sleep(0.1)
        yield server
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; make sure no worker of its group outlives it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return


# -- the servers -------------------------------------------------------------------------


def start_jwkit(
    work: Path,
    workers: int,
    stack: contextlib.ExitStack,
    name: str = "jwkit",
    extra: dict[str, str] | None = None,
) -> tuple[Server, str]:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "JWKIT_HOME": str(work / f"{name}-home"),
        "JWKIT_ADMIN_TOKEN": ADMIN_TOKEN,
        "JWKIT_ADMIN_PASSWORD": "bench-" + ADMIN_TOKEN,
        "JWKIT_LOG_LEVEL": "warning",
        **(extra or {}),
    }
    command = [
        sys.executable,
        "-m",
        "jwkit.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    server = stack.enter_context(start(name, command, work / f"{name}.log", port, env))
    return server, f"http://127.0.0.1:{port}"


# -- key custody (issue 15): the same token endpoint with keys in SoftHSM2 ------------------

SOFTHSM_MODULES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
)


def softhsm_env(work: Path) -> dict[str, str]:
    """A throwaway SoftHSM2 token and the settings of a jwkit using it (JWKIT_KEY_BACKEND)."""
    module = next((m for m in SOFTHSM_MODULES if Path(m).is_file()), None)
    if module is None or not shutil.which("softhsm2-util"):
        raise BenchError("SoftHSM2 is not installed (Debian: apt-get install softhsm2)")
    tokens = work / "softhsm-tokens"
    tokens.mkdir()
    conf = work / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    pin = base64.urlsafe_b64encode(os.urandom(9)).decode()
    command = ["softhsm2-util", "--init-token", "--free", "--label", "bench"]
    command += ["--pin", pin, "--so-pin", pin + "so"]
    subprocess.run(
        command, env={**os.environ, "SOFTHSM2_CONF": str(conf)}, check=True, capture_output=True
    )
    return {
        "SOFTHSM2_CONF": str(conf),
        "JWKIT_KEY_BACKEND": "pkcs11",
        "JWKIT_PKCS11_MODULE": module,
        "JWKIT_PKCS11_TOKEN_LABEL": "bench",
        "JWKIT_PKCS11_PIN": pin,
    }


def custody_setup(base: str, alg: str) -> dict[str, str]:
    """A project of ``alg`` (token status on, as for ``token``) and a client."""
    import httpx

    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=base, headers=auth, timeout=60) as client:
        project, created = project_with_client(client, {"name": f"bench-{alg}", "algorithm": alg})
    pid = project["id"]
    return {
        "issuer": project["issuer"],
        "audience": project["audience"],
        "jwks": f"{base}/p/{pid}/.well-known/jwks.json",
        "token": f"{base}/p/{pid}/oauth2/token",
        "client_id": created["client_id"],
        "client_secret": created["client_secret"],
    }


def custody_targets(
    work: Path,
    args: argparse.Namespace,
    stack: contextlib.ExitStack,
    local: Server,
    local_base: str,
    form: str,
    only: set[str],
) -> list[Target]:
    """``token-rs256`` (local key) and ``token-hsm``/``token-hsm-rs256`` (keys in SoftHSM2),
    each checked like ``token`` before any load."""
    wanted = only & set(CUSTODY_ENDPOINTS)
    hsm: tuple[Server, str] | None = None
    if wanted & {"token-hsm", "token-hsm-rs256"}:
        hsm = start_jwkit(work, args.workers, stack, "jwkit-pkcs11", softhsm_env(work))
        _wait_ready(hsm[1])
    targets = []
    rows: list[tuple[str, str, tuple[Server, str] | None]] = [
        ("token-rs256", "RS256", (local, local_base)),
        ("token-hsm", "ES256", hsm),
        ("token-hsm-rs256", "RS256", hsm),
    ]
    for endpoint, alg, pair in rows:
        if endpoint not in wanted or pair is None:
            continue
        server, base = pair
        setup = custody_setup(base, alg)
        auth = basic(setup["client_id"], setup["client_secret"])
        check_token(
            setup["token"], auth, form, setup["jwks"], setup["issuer"], setup["audience"], alg
        )
        script = token_script(work / f"{endpoint}.lua", auth, form)
        targets.append(Target(server.name, endpoint, setup["token"], server, script=script))
    return targets


def _wait_ready(base: str) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while httpx.get(f"{base}/readyz", timeout=5).status_code != 200:
        if time.monotonic() > deadline:
            raise BenchError(f"{base} never became ready")
        time.sleep(0.2)


def project_with_client(client: Any, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Create a project (``body``) and an OAuth client with the bench scope in it."""
    r = client.post("/api/v1/projects", json=body)
    if r.status_code != 201:
        raise BenchError(f"jwkit: creating the project answered {r.status_code}: {r.text}")
    project = r.json()
    r = client.post(
        f"/api/v1/projects/{project['id']}/clients", json={"name": "bench", "scopes": [SCOPE]}
    )
    if r.status_code != 201:
        raise BenchError(f"jwkit: creating the client answered {r.status_code}: {r.text}")
    return project, r.json()


def jwkit_setup(base: str) -> dict[str, str]:
    """An ES256 project and an OAuth client, through the admin API."""
    import httpx

    _wait_ready(base)
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=base, headers=auth, timeout=30) as client:
        project, created = project_with_client(client, {"name": "bench", "algorithm": "ES256"})
        plain, plain_client = project_with_client(
            client, {"name": "bench-nostatus", "algorithm": "ES256", "token_status": False}
        )
    pid = project["id"]
    return {
        "plain_issuer": plain["issuer"],
        "plain_audience": plain["audience"],
        "plain_jwks": f"{base}/p/{plain['id']}/.well-known/jwks.json",
        "plain_token": f"{base}/p/{plain['id']}/oauth2/token",
        "plain_client_id": plain_client["client_id"],
        "plain_client_secret": plain_client["client_secret"],
        "statuslist": f"{base}/p/{pid}/statuslists/1",
        "project": pid,
        "issuer": project["issuer"],
        "audience": project["audience"],
        "jwks": f"{base}/p/{pid}/.well-known/jwks.json",
        "token": f"{base}/p/{pid}/oauth2/token",
        "client_id": created["client_id"],
        "client_secret": created["client_secret"],
    }


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    server_tokens off;
{tuning}
    tcp_nodelay on;
    keepalive_requests 100000000;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    types {{ }}
    default_type {content_type};
    server {{
        listen 127.0.0.1:{port};
        root {dir}/www;
        location = /{file} {{
            etag on;
{headers}
        }}
    }}
}}
"""


# Debian's nginx.conf: sendfile, TCP_CORK around it, a file open per request. Tuned for one
# small file: descriptor and metadata cached, and a 420-byte body read into the response buffer
# (one writev) instead of sendfile (writev for the headers, sendfile, cork on and off).
NGINX_DEFAULTS = "    sendfile on;\n    tcp_nopush on;"
NGINX_TUNED = "    sendfile off;\n    open_file_cache max=16;\n    open_file_cache_valid 3600s;"


def start_nginx(
    work: Path,
    workers: int,
    body: bytes,
    headers: dict[str, str],
    stack: contextlib.ExitStack,
    *,
    tuned: bool,
    file: str = "jwks.json",
) -> tuple[Server, str]:
    port = free_port()
    conf_dir = work / ("nginx-tuned" if tuned else "nginx")
    if file != "jwks.json":
        conf_dir = conf_dir.with_name(conf_dir.name + "-" + file)
    (conf_dir / "www").mkdir(parents=True)
    (conf_dir / "www" / file).write_bytes(body)
    # nginx workers run as an unprivileged user when we are root: let them read the file.
    for path in (work, conf_dir, conf_dir / "www"):
        path.chmod(0o755)
    (conf_dir / "www" / file).chmod(0o644)
    extra = "\n".join(
        f'            add_header {name} "{value}" always;'
        for name, value in headers.items()
        if name.lower() in ("cache-control", "access-control-allow-origin")
    )
    conf = NGINX_CONF.format(
        workers=workers,
        dir=conf_dir,
        port=port,
        headers=extra,
        tuning=NGINX_TUNED if tuned else NGINX_DEFAULTS,
        content_type=headers["content-type"].split(";")[0],
        file=file,
    )
    (conf_dir / "nginx.conf").write_text(conf)
    command = [
        "nginx",
        "-p",
        f"{conf_dir}/",
        "-c",
        str(conf_dir / "nginx.conf"),
        "-e",
        str(conf_dir / "error.log"),
    ]
    name = "nginx (tuned)" if tuned else "nginx (defaults)"
    server = stack.enter_context(start(name, command, conf_dir / "stdout.log", port))
    return server, f"http://127.0.0.1:{port}/{file}"


def bare_app() -> Any:
    """A bare ASGI app answering jwkit's JWKS bytes and headers (``uvicorn --factory``).

    No framework, no routing, headers prebuilt: what uvicorn itself costs per response, the
    ceiling for any Python endpoint served by uvicorn on this machine.
    """
    body = Path(os.environ["BENCH_BARE_BODY"]).read_bytes()
    headers = [
        (name.encode(), value.encode())
        for name, value in json.loads(os.environ["BENCH_BARE_HEADERS"]).items()
    ] + [(b"content-length", b"%d" % len(body))]
    start_message = {"type": "http.response.start", "status": 200, "headers": headers}
    body_message = {"type": "http.response.body", "body": body}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await send(start_message)
            await send(body_message)

    return app


def start_bare(
    work: Path, workers: int, body: bytes, headers: dict[str, str], stack: contextlib.ExitStack
) -> tuple[Server, str]:
    port = free_port()
    (work / "bare-jwks.json").write_bytes(body)
    keep = ("content-type", "etag", "cache-control", "access-control-allow-origin")
    env = {
        **os.environ,
        "BENCH_BARE_BODY": str(work / "bare-jwks.json"),
        "BENCH_BARE_HEADERS": json.dumps({k: v for k, v in headers.items() if k in keep}),
    }
    # The same uvicorn settings as `jwkit serve` (uvloop, httptools, no access log).
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "server:bare_app",
        "--app-dir",
        str(HERE),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--no-server-header",
        "--log-level",
        "warning",
    ]
    server = stack.enter_context(start("uvicorn bare ASGI", command, work / "bare.log", port, env))
    return server, f"http://127.0.0.1:{port}/jwks.json"


def ensure_oidc_provider() -> None:
    if OIDC_ENTRY.exists():
        return
    if not shutil.which("npm"):
        raise BenchError("oidc-provider is not installed and npm is missing")
    print(f"installing {OIDC_PROVIDER} under {NODE_PREFIX}", file=sys.stderr)
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(NODE_PREFIX), OIDC_PROVIDER],
        check=True,
        stdout=sys.stderr,
    )


def start_oidc_provider(
    work: Path, workers: int, client_id: str, secret: str, stack: contextlib.ExitStack
) -> tuple[Server, str]:
    port = free_port()
    env = {
        **os.environ,
        "OIDC_PROVIDER_ENTRY": str(OIDC_ENTRY),
        "NODE_ENV": "production",
        "OIDC_BENCH_WORKERS": str(workers),
        "OIDC_BENCH_CLIENT_SECRET": secret,
    }
    command = ["node", str(HERE / "oidc_provider_server.mjs"), str(port), client_id, RESOURCE]
    server = stack.enter_context(start("oidc-provider", command, work / "oidc.log", port, env))
    return server, f"http://127.0.0.1:{port}"


# -- checks before the load ----------------------------------------------------------------


def check_jwks(url: str, expected: bytes | None = None) -> tuple[bytes, dict[str, str]]:
    import httpx

    r = httpx.get(url, timeout=10)
    if r.status_code != 200:
        raise BenchError(f"{url} answered {r.status_code}: {r.text[:300]}")
    if not r.headers.get("content-type", "").startswith("application/jwk-set+json"):
        raise BenchError(f"{url}: content type {r.headers.get('content-type')!r}")
    keys = r.json().get("keys")
    if not keys or not all(k.get("kty") == "EC" and k.get("kid") for k in keys):
        raise BenchError(f"{url}: not a JWKS of EC keys: {r.text[:300]}")
    private = {"d", "p", "q", "dp", "dq", "qi", "k"}
    if any(private & set(k) for k in keys):
        raise BenchError(f"{url}: the JWKS holds private members")
    if expected is not None and r.content != expected:
        raise BenchError(f"{url}: not the same bytes as jwkit's JWKS")
    return r.content, dict(r.headers)


def basic(client_id: str, secret: str) -> str:
    from urllib.parse import quote_plus

    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def check_token(
    url: str,
    authorization: str,
    form: str,
    jwks_url: str,
    issuer: str,
    audience: str,
    alg: str = "ES256",
) -> dict[str, Any]:
    """POST the token request; the answer must hold a JWT that jwkit's Verifier accepts."""
    import httpx

    from jwkit import Verifier

    r = httpx.post(
        url,
        content=form.encode(),
        timeout=10,
        headers={
            "Authorization": authorization,
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    if r.status_code != 200:
        raise BenchError(f"{url} answered {r.status_code}: {r.text[:300]}")
    body = r.json()
    token = body.get("access_token", "")
    if body.get("token_type", "").lower() != "bearer" or token.count(".") != 2:
        raise BenchError(f"{url}: no JWT access token in {r.text[:300]}")
    with Verifier.from_jwks_url(
        jwks_url,
        allow_insecure_http=True,
        issuer=issuer,
        audience=audience,
        algorithms=[alg],
        typ="at+jwt",
    ) as verifier:
        claims = dict(verifier.verify(token))
    if claims.get("scope") != SCOPE:
        raise BenchError(f"{url}: token scope {claims.get('scope')!r}, expected {SCOPE!r}")
    return claims


# -- load ----------------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    endpoint: str  # "jwks", "jwks-distinct" or "token"
    url: str
    server: Server
    script: Path | None = None  # a wrk Lua script (the token POST)
    rates: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    body_bytes: int = 0

    @property
    def best(self) -> float:
        return max(self.rates)

    @property
    def best_round(self) -> int:
        return self.rates.index(self.best)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise BenchError(f"cannot read wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk_command(target: Target, seconds: int, args: argparse.Namespace) -> list[str]:
    return [
        *PIN.wrk,
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{seconds}s",
        "--latency",
        *(["-s", str(target.script)] if target.script else []),
        target.url,
    ]


def run_wrk(target: Target, seconds: int, args: argparse.Namespace, record: bool) -> None:
    command = wrk_command(target, seconds, args)
    cpu_before = target.server.cpu_seconds()
    proc = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    cpu = target.server.cpu_seconds() - cpu_before
    out = proc.stdout
    if proc.returncode != 0:
        raise BenchError(f"{shlex.join(command)} failed ({proc.returncode}):\n{proc.stderr}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if not rate or not total:
        raise BenchError(f"cannot read wrk output:\n{out}")
    label = f"{target.name} {target.endpoint}"
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if non2xx:
        raise BenchError(f"{label}: {non2xx.group(1)} error responses under load:\n{out}")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if errors and any(int(n) for n in errors.groups()):
        raise BenchError(f"{label}: socket errors under load:\n{out}")
    if not record:
        return
    target.rates.append(float(rate.group(1)))
    target.cpu_us.append(cpu / int(total.group(1)) * 1e6)
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    target.p50.append(_ms(latency["50"]))
    target.p99.append(_ms(latency["99"]))


def distinct_script(path: Path) -> Path:
    path.write_text(
        "-- GET the same path with a query that differs at every request\n"
        "local n = 0\n"
        "request = function()\n"
        "  n = n + 1\n"
        '  return wrk.format(nil, wrk.path .. "?n=" .. n)\n'
        "end\n"
    )
    return path


def token_script(path: Path, authorization: str, form: str) -> Path:
    path.write_text(
        "-- POST a client credentials token request (client_secret_basic)\n"
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(form)}\n"
        'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
        f'wrk.headers["Authorization"] = {json.dumps(authorization)}\n'
    )
    return path


# -- report --------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    def first_line(command: list[str]) -> str:
        proc = subprocess.run(command, capture_output=True, text=True)
        return (proc.stdout or proc.stderr).strip().splitlines()[0]

    import uvicorn

    package = json.loads((OIDC_ENTRY.parents[1] / "package.json").read_text())
    return {
        "wrk": first_line(["wrk", "-v"]).split(" [")[0],
        "nginx": first_line(["nginx", "-v"]).split("/")[-1],
        "node": first_line(["node", "--version"]),
        "oidc-provider": package["version"],
        "uvicorn": uvicorn.__version__,
    }


LABELS = {
    "nginx": "nginx, tuned (the floor)",
    "nginx-defaults": "nginx, Debian's sendfile settings",
    "uvicorn-bare": "uvicorn, bare ASGI app (reference)",
    "oidc-provider": "oidc-provider",
    "jwkit": "**jwkit**",
    "jwkit-pkcs11": "**jwkit**, JWKIT_KEY_BACKEND=pkcs11",
}
ENDPOINTS = {
    "jwks": "JWKS",
    "jwks-distinct": "JWKS, every request distinct",
    "token": "token (client credentials, ES256 JWT)",
    "token-nostatus": "token, project without token status",
    "statuslist": "Status List Token (GET {issuer}/statuslists/1)",
    "token-rs256": "token, RS256 key sealed in the database (local)",
    "token-hsm": "token, ES256 key in SoftHSM2 (pkcs11)",
    "token-hsm-rs256": "token, RS256 key in SoftHSM2 (pkcs11)",
}
#: Measured only when named in --only (they start a second server on a SoftHSM2 token).
CUSTODY_ENDPOINTS = ("token-rs256", "token-hsm", "token-hsm-rs256")


def report(targets: list[Target], args: argparse.Namespace, work: Path) -> None:
    from _timing import table

    by = {(t.name, t.endpoint): t for t in targets}
    rows: list[tuple[str, ...]] = []
    for t in targets:
        vs_oidc = by.get(("oidc-provider", t.endpoint))
        vs_nginx = by.get(("nginx", t.endpoint))
        rows.append(
            (
                LABELS[t.name],
                ENDPOINTS[t.endpoint],
                f"{t.best:,.0f}",
                f"{t.best / vs_oidc.best:.2f}x" if vs_oidc else "—",
                f"{t.best / vs_nginx.best:.2f}x" if vs_nginx else "—",
                f"{t.p50[t.best_round]:.2f} / {t.p99[t.best_round]:.2f}",
                f"{min(t.cpu_us):.0f}",
            )
        )
    v = versions()
    if PIN.server and PIN.wrk:
        placement = (
            f"every server pinned to CPU {PIN.server[-1]} and wrk to CPU {PIN.wrk[-1]} (`taskset`)"
        )
    else:
        placement = "the load generator and the servers share them (not pinned)"
    print(
        f"\nLoopback, {os.cpu_count()} CPUs: {placement}; "
        f"{args.workers} worker process(es) per server (jwkit: `jwkit serve --workers "
        f"{args.workers}`, uvicorn {v['uvicorn']}, SQLite; oidc-provider {v['oidc-provider']}: "
        f"{args.workers} Node {v['node']} process(es); nginx {v['nginx']}: `worker_processes "
        f"{args.workers}`). Load: {v['wrk']}, `-t{args.threads} -c{args.connections}`, "
        f"keep-alive; {args.rounds} interleaved rounds of {args.duration} s per target after "
        f"a {args.warmup} s warm-up; each target's best round.\n"
    )
    print(
        table(
            rows,
            (
                "server",
                "endpoint",
                "req/s",
                "vs oidc-provider",
                "vs nginx (tuned)",
                "latency p50 / p99 ms",
                "server CPU µs/req",
            ),
        )
    )
    sizes = ", ".join(
        f"{t.name} {t.body_bytes} B" for t in targets if t.endpoint == "jwks" and t.body_bytes
    )
    print(
        f"\nJWKS bodies: {sizes}: two EC P-256 keys each. nginx and the bare ASGI app serve "
        "jwkit's bytes with jwkit's content type, `Cache-Control`, CORS header and an `ETag`. "
        "Server CPU: user + system time of the server's whole process group per request "
        "(best round), steadier than req/s on a shared machine; with one CPU per server, req/s "
        "x CPU µs/req near 1,000,000 means the server's CPU was saturated, well below it that "
        "wrk (one thread on its own CPU) was the limit. Before the load every "
        "endpoint answered 200 with the expected body (the JWKS bytes; a JWT access token "
        "verified by `jwkit.Verifier.from_jwks_url`); no target had an error response (wrk "
        "counts status >= 400) or a socket error.\n"
    )
    if ("jwkit", "jwks-distinct") in by:
        print(
            "*JWKS, every request distinct*: wrk adds `?n=<counter>` to each request (ignored "
            "by both servers), so no two requests are byte-identical: neither server can "
            "gain from requests repeating. Their ratio is against nginx with the same "
            "requests.\n"
        )
    print("| goal (issue 5) | measured | |\n|---|---:|---|")
    for name, endpoint, against, minimum in GOALS:
        if (name, endpoint) not in by or (against, endpoint) not in by:
            continue  # not measured in this run (--only)
        ratio = by[name, endpoint].best / by[against, endpoint].best
        verdict = "met" if ratio >= minimum else "**not met**"
        print(
            f"| {name} {ENDPOINTS[endpoint]} >= {minimum}x {LABELS[against]} "
            f"| {ratio:.2f}x | {verdict} |"
        )

    def cpu(name: str, endpoint: str) -> float:
        return min(by[name, endpoint].cpu_us)

    needed = [
        ("oidc-provider", "jwks"),
        ("jwkit", "jwks"),
        ("oidc-provider", "token"),
        ("jwkit", "token"),
        ("uvicorn-bare", "jwks"),
    ]
    print(
        ""
        if not all(k in by for k in needed)
        else f"\nServer CPU per request, oidc-provider / jwkit: JWKS "
        f"{cpu('oidc-provider', 'jwks') / cpu('jwkit', 'jwks'):.2f}x, token "
        f"{cpu('oidc-provider', 'token') / cpu('jwkit', 'token'):.2f}x. The bare ASGI app "
        f"({cpu('uvicorn-bare', 'jwks'):.0f} µs) is what uvicorn alone costs per response."
    )
    if not v["node"].startswith(("v22", "v24", "v26")):
        print(
            f"oidc-provider {v['oidc-provider']} asks for Node 22 LTS or later and warns on "
            f"Node {v['node']}, the one this machine has."
        )
    print(
        "\nCommands (ports are free ones picked at each run; `$W` is the run's temporary "
        "directory, where the configuration and the Lua scripts are written):\n"
    )
    print("```sh")
    seen = set()
    for t in targets:
        if t.server.name not in seen:
            seen.add(t.server.name)
            print(_anonymise(shlex.join(t.server.command), work))
    for t in targets:
        print(_anonymise(shlex.join(wrk_command(t, args.duration, args)), work))
    print("```\n")
    print("```lua")
    scripts = {t.script for t in targets if t.script is not None}
    for t in targets:
        if t.script in scripts:
            scripts.discard(t.script)
            print(f"-- $W/{t.script.name}")
            print(_anonymise(t.script.read_text(), work).rstrip())
    print("```\n")
    defaults = " ".join(line.strip() for line in NGINX_DEFAULTS.splitlines())
    print(
        "`$W/nginx-tuned/nginx.conf` (the other nginx, Debian's file serving settings, has "
        f"`{defaults}` in place of the three tuning lines):\n"
    )
    print("```nginx")
    print(_anonymise((work / "nginx-tuned" / "nginx.conf").read_text(), work).rstrip())
    print("```")


def _anonymise(text: str, work: Path) -> str:
    text = text.replace(str(work), "$W").replace(sys.executable, ".venv/bin/python")
    text = text.replace(str(ROOT) + "/", "")
    # Secrets and random ids are per run: show their shape, not their value.
    text = re.sub(r'"Basic [A-Za-z0-9+/=]+"', '"Basic <base64 client_id:secret>"', text)
    return re.sub(r"proj_[0-9a-f]+", "proj_…", text)


# -- main ----------------------------------------------------------------------------------


def check_statuslist(url: str, expected: bytes | None = None) -> tuple[bytes, dict[str, str]]:
    """The Status List Token at ``url``: a compact JWS served as ``application/statuslist+jwt``
    whose payload holds a ``status_list`` (the same bytes as jwkit's, when ``expected``)."""
    import httpx

    from jwkit.jose.jwt import decode_unverified

    r = httpx.get(url, timeout=10)
    if r.status_code != 200:
        raise BenchError(f"{url} answered {r.status_code}: {r.text[:300]}")
    if not r.headers.get("content-type", "").startswith("application/statuslist+jwt"):
        raise BenchError(f"{url}: content type {r.headers.get('content-type')!r}")
    header, claims = decode_unverified(r.text)
    if header.get("typ") != "statuslist+jwt" or "status_list" not in claims:
        raise BenchError(f"{url}: not a Status List Token")
    if expected is not None and r.content != expected:
        raise BenchError(f"{url}: not the same bytes as jwkit's status list")
    return r.content, dict(r.headers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=3, help="seconds per round and target")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1, help="seconds of warm-up per target")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--workers", type=int, default=1, help="processes per server")
    parser.add_argument(
        "--server-cpus",
        help='taskset CPU list for every server (default: the first CPU; "" '
        'with --wrk-cpus "": no pinning)',
    )
    parser.add_argument("--wrk-cpus", help="taskset CPU list for wrk (default: the second CPU)")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated endpoints to measure (jwks, jwks-distinct, token, token-nostatus, "
        "statuslist; token-rs256, token-hsm, token-hsm-rs256: key custody, only when named); "
        "default all. Without jwks, oidc-provider and the other JWKS servers are not measured.",
    )
    args = parser.parse_args(argv)
    only = {e for e in args.only.split(",") if e}
    unknown = only - set(ENDPOINTS)
    if unknown:
        parser.error(f"unknown endpoints: {', '.join(sorted(unknown))}")
    with_oidc = not only or bool(only & {"jwks", "jwks-distinct"})
    pinned = pinning(args.server_cpus, args.wrk_cpus)
    PIN.server, PIN.wrk = pinned.server, pinned.wrk

    tools = ("wrk", "nginx", "node") if with_oidc else ("wrk", "nginx")
    missing = [tool for tool in tools if not shutil.which(tool)]
    if missing:
        print(
            f"cannot run: {', '.join(missing)} not installed "
            "(Debian: apt-get install wrk nginx nodejs npm)"
        )
        return 1
    if with_oidc:
        ensure_oidc_provider()
    sys.path.insert(0, str(ROOT / "src"))

    with tempfile.TemporaryDirectory(prefix="jwkit-bench-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        jwkit_server, jwkit_base = start_jwkit(work, args.workers, stack)
        jw = jwkit_setup(jwkit_base)
        jwks_body, jwks_headers = check_jwks(jw["jwks"])
        nginx, nginx_url = start_nginx(
            work, args.workers, jwks_body, jwks_headers, stack, tuned=True
        )
        nginx_default, nginx_default_url = start_nginx(
            work, args.workers, jwks_body, jwks_headers, stack, tuned=False
        )
        bare, bare_url = start_bare(work, args.workers, jwks_body, jwks_headers, stack)
        for url in (nginx_url, nginx_default_url, bare_url):
            check_jwks(url, expected=jwks_body)
        form = f"grant_type=client_credentials&scope={SCOPE}"
        jw_auth = basic(jw["client_id"], jw["client_secret"])
        check_token(jw["token"], jw_auth, form, jw["jwks"], jw["issuer"], jw["audience"])
        plain_auth = basic(jw["plain_client_id"], jw["plain_client_secret"])
        check_token(
            jw["plain_token"],
            plain_auth,
            form,
            jw["plain_jwks"],
            jw["plain_issuer"],
            jw["plain_audience"],
        )
        jw_lua = token_script(work / "jwkit-token.lua", jw_auth, form)
        plain_lua = token_script(work / "jwkit-token-nostatus.lua", plain_auth, form)
        distinct = distinct_script(work / "distinct.lua")
        # The token endpoint has now issued a token with a status: list 1 exists.
        list_body, list_headers = check_statuslist(jw["statuslist"])
        nginx_list, nginx_list_url = start_nginx(
            work, args.workers, list_body, list_headers, stack, tuned=True, file="statuslist"
        )
        check_statuslist(nginx_list_url, expected=list_body)
        status_targets = [
            Target("jwkit", "token-nostatus", jw["plain_token"], jwkit_server, script=plain_lua),
            Target("nginx", "statuslist", nginx_list_url, nginx_list, body_bytes=len(list_body)),
            Target(
                "jwkit", "statuslist", jw["statuslist"], jwkit_server, body_bytes=len(list_body)
            ),
        ]
        if not with_oidc:
            targets = [
                t
                for t in [
                    Target("jwkit", "token", jw["token"], jwkit_server, script=jw_lua),
                    *status_targets,
                ]
                if t.endpoint in only
            ]
            targets += custody_targets(work, args, stack, jwkit_server, jwkit_base, form, only)
            run_targets(targets, args)
            report_status(targets)
            report_custody(targets)
            return 0
        oidc_id = "bench-client"
        oidc_secret = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
        oidc_server, oidc_base = start_oidc_provider(
            work, args.workers, oidc_id, oidc_secret, stack
        )
        oidc_jwks_body, _ = check_jwks(f"{oidc_base}/jwks")
        oidc_auth = basic(oidc_id, oidc_secret)
        check_token(f"{oidc_base}/token", oidc_auth, form, f"{oidc_base}/jwks", oidc_base, RESOURCE)
        oidc_lua = token_script(work / "oidc-token.lua", oidc_auth, form)

        size = len(jwks_body)
        targets = [
            Target("nginx", "jwks", nginx_url, nginx, body_bytes=size),
            Target("nginx-defaults", "jwks", nginx_default_url, nginx_default),
            Target("uvicorn-bare", "jwks", bare_url, bare),
            Target(
                "oidc-provider",
                "jwks",
                f"{oidc_base}/jwks",
                oidc_server,
                body_bytes=len(oidc_jwks_body),
            ),
            Target("jwkit", "jwks", jw["jwks"], jwkit_server, body_bytes=size),
            Target("nginx", "jwks-distinct", nginx_url, nginx, script=distinct),
            Target("jwkit", "jwks-distinct", jw["jwks"], jwkit_server, script=distinct),
            Target("oidc-provider", "token", f"{oidc_base}/token", oidc_server, script=oidc_lua),
            Target("jwkit", "token", jw["token"], jwkit_server, script=jw_lua),
            *status_targets,
        ]
        if only:
            targets = [t for t in targets if t.endpoint in only]
        for target in targets:
            print(f"warm-up {target.name} {target.endpoint}", file=sys.stderr, flush=True)
            run_wrk(target, args.warmup, args, record=False)
        for n in range(args.rounds):
            for target in targets:
                run_wrk(target, args.duration, args, record=True)
                print(
                    f"round {n + 1} {target.name} {target.endpoint}: "
                    f"{target.rates[-1]:,.0f} req/s, {target.cpu_us[-1]:.0f} µs CPU/req",
                    file=sys.stderr,
                    flush=True,
                )
        # Still serving after the load: the same JWKS bytes and a verifiable token.
        check_jwks(jw["jwks"], expected=jwks_body)
        check_token(jw["token"], jw_auth, form, jw["jwks"], jw["issuer"], jw["audience"])
        report(targets, args, work)
        report_status(targets)
    return 0


def run_targets(targets: list[Target], args: argparse.Namespace) -> None:
    """Warm up each target, then interleaved rounds (as :func:`main` does for all)."""
    for target in targets:
        run_wrk(target, args.warmup, args, record=False)
    for n in range(args.rounds):
        for target in targets:
            run_wrk(target, args.duration, args, record=True)
            print(
                f"round {n + 1} {target.name} {target.endpoint}: "
                f"{target.rates[-1]:,.0f} req/s, {target.cpu_us[-1]:.0f} µs CPU/req",
                file=sys.stderr,
                flush=True,
            )


def report_custody(targets: list[Target]) -> None:
    """The key custody rows (issue 15): the same token endpoint, keys local or in SoftHSM2."""
    rows = [t for t in targets if t.endpoint in ("token", *CUSTODY_ENDPOINTS)]
    if not any(t.endpoint in CUSTODY_ENDPOINTS for t in rows):
        return
    print("\n| key custody (issue 15) | req/s | CPU µs/req | p99 ms |\n|---|---:|---:|---:|")
    for t in rows:
        print(
            f"| {LABELS.get(t.name, t.name)}: {ENDPOINTS[t.endpoint]} | {t.best:,.0f} "
            f"| {min(t.cpu_us):.0f} | {t.p99[t.best_round]:.1f} |"
        )
    hsm = [t for t in rows if t.endpoint == "token-hsm"]
    if hsm:
        verdict = "met" if hsm[0].best >= 500 else "**not met**"
        print(
            f"\ngoal (issue 15): >= 500 tokens/s, ES256 in SoftHSM2: {hsm[0].best:,.0f} ({verdict})"
        )


def report_status(targets: list[Target]) -> None:
    """The token-status rows and goals (issue 12), for the targets that ran."""
    by = {(t.name, t.endpoint): t for t in targets}
    print("\n| token status (issue 12) | req/s | CPU µs/req |\n|---|---:|---:|")
    for t in targets:
        if t.endpoint in ("token", "token-nostatus", "statuslist"):
            print(f"| {t.name} {ENDPOINTS[t.endpoint]} | {t.best:,.0f} | {min(t.cpu_us):.0f} |")
    print("\n| goal (issue 12) | measured | |\n|---|---:|---|")
    for name, endpoint, against, against_endpoint, minimum in STATUS_GOALS:
        if (name, endpoint) not in by or (against, against_endpoint) not in by:
            continue
        ratio = by[name, endpoint].best / by[against, against_endpoint].best
        verdict = "met" if ratio >= minimum else "**not met**"
        print(
            f"| {name} {ENDPOINTS[endpoint]} >= {minimum}x {against} "
            f"{ENDPOINTS[against_endpoint]} | {ratio:.2f}x | {verdict} |"
        )


if __name__ == "__main__":
    sys.exit(main())
