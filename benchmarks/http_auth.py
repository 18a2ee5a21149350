"""HTTP benchmark: a FastAPI endpoint unprotected, protected by jwkit, protected by PyJWT.

Each variant is the same endpoint in the same FastAPI app shape, served by uvicorn (one
worker, no access log) on 127.0.0.1 in its own process. Both protected variants fetch the
public key from a JWKS document served by a local HTTP server and verify the same ES256 token
on every request: jwkit through the ``BearerAuth`` dependency (``verify_async``, token cache
on) and through ``BearerAuthMiddleware`` (the same verifier as plain ASGI middleware), PyJWT
through ``PyJWKClient`` (its JWKS cache on) and ``jwt.decode``. Load comes from ``wrk`` when it
is installed, else from a bounded httpx loop. One run; it prints requests per second and the
ratios as a markdown table. Goal: jwkit keeps at least 0.9 of the unprotected rate.

    python benchmarks/http_auth.py [--duration 10] [--rounds 5] [--connections 32]
                                   [--loader wrk|httpx]

A second column measures the CPU time per request of each app called in-process (no socket):
it is what the framework and the authentication cost, and it hardly moves when other
processes share the machine, unlike requests per second.
"""

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODES = ("unprotected", "noop-dependency", "jwkit", "jwkit-middleware", "pyjwt")
LABELS = {
    "unprotected": "unprotected",
    "noop-dependency": "no-op FastAPI dependency (no auth)",
    "jwkit": "jwkit `BearerAuth` dependency",
    "jwkit-middleware": "jwkit `BearerAuthMiddleware` (ASGI)",
    "pyjwt": "PyJWT `PyJWKClient` dependency",
}
AUDIENCE = "bench-api"


# -- the server side (run in a child process) ----------------------------------------------


def build_app(mode: str, jwks_url: str) -> Any:
    from typing import Annotated

    from fastapi import Depends, FastAPI, Header, HTTPException

    app = FastAPI()
    if mode == "unprotected":

        @app.get("/me")
        async def me_open() -> dict[str, Any]:
            return {"sub": "anonymous"}

    elif mode == "noop-dependency":
        # What FastAPI's dependency injection alone costs: the floor for any auth dependency.
        from starlette.requests import HTTPConnection

        async def noop(conn: HTTPConnection) -> str:
            return "anonymous"

        @app.get("/me")
        async def me_noop(sub: Annotated[str, Depends(noop)]) -> dict[str, Any]:
            return {"sub": sub}

    elif mode == "jwkit":
        from jwkit import Claims
        from jwkit.integrations.fastapi import BearerAuth
        from jwkit.verify import Verifier

        auth = BearerAuth(
            Verifier.from_jwks_url(jwks_url, allow_insecure_http=True, audience=AUDIENCE)
        )

        @app.get("/me")
        async def me_jwkit(claims: Annotated[Claims, Depends(auth)]) -> dict[str, Any]:
            return {"sub": claims.sub}

    elif mode == "pyjwt":
        import jwt as pyjwt

        client = pyjwt.PyJWKClient(jwks_url, cache_jwk_set=True, lifespan=600)

        async def verify(authorization: Annotated[str | None, Header()] = None) -> Any:
            scheme, _, token = (authorization or "").partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise HTTPException(401, "No token")
            try:
                key = client.get_signing_key_from_jwt(token)
                return pyjwt.decode(token, key.key, algorithms=["ES256"], audience=AUDIENCE)
            except pyjwt.PyJWTError as exc:
                raise HTTPException(401, "Invalid or expired token") from exc

        @app.get("/me")
        async def me_pyjwt(claims: Annotated[dict[str, Any], Depends(verify)]) -> dict[str, Any]:
            return {"sub": claims["sub"]}

    elif mode == "jwkit-middleware":
        from fastapi import Request

        from jwkit.integrations.starlette import BearerAuthMiddleware
        from jwkit.verify import Verifier

        verifier = Verifier.from_jwks_url(jwks_url, allow_insecure_http=True, audience=AUDIENCE)
        app.add_middleware(BearerAuthMiddleware, verifier=verifier)

        @app.get("/me")
        async def me_middleware(request: Request) -> dict[str, Any]:
            return {"sub": request.state.claims.sub}

    else:
        raise SystemExit(f"unknown mode {mode!r}")
    return app


def serve(mode: str, port: int, jwks_url: str) -> None:
    import uvicorn

    uvicorn.run(
        build_app(mode, jwks_url),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )


# -- the driver ----------------------------------------------------------------------------


class _JWKSHandler(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def jwks_server(body: bytes) -> Iterator[str]:
    handler = type("Handler", (_JWKSHandler,), {"body": body})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def app_server(mode: str, jwks_url: str) -> Iterator[str]:
    port = free_port()
    args = [sys.executable, __file__, "serve", mode, str(port), jwks_url]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(args, env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"the {mode} server exited with {proc.returncode}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"the {mode} server did not start")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/me"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def check(url: str, token: str) -> None:
    import httpx

    r = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    if r.status_code != 200:
        raise SystemExit(f"{url} answered {r.status_code}: {r.text}")


def load_wrk(url: str, token: str, duration: float, connections: int) -> float:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            "-H",
            f"Authorization: Bearer {token}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match:
        raise SystemExit(f"cannot read wrk output:\n{out}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if non2xx:
        raise SystemExit(f"{url}: {non2xx.group(1)} failed responses")
    return float(match.group(1))


def load_httpx(url: str, token: str, duration: float, connections: int) -> float:
    import httpx

    async def run() -> float:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        headers = {"Authorization": f"Bearer {token}"}
        done = 0
        async with httpx.AsyncClient(limits=limits, headers=headers, timeout=10) as client:
            end = time.perf_counter() + duration

            async def worker() -> None:
                nonlocal done
                while time.perf_counter() < end:
                    r = await client.get(url)
                    if r.status_code != 200:
                        raise SystemExit(f"{url} answered {r.status_code}")
                    done += 1

            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(connections)))
            return done / (time.perf_counter() - start)

    return asyncio.run(run())


def cpu_per_request(mode: str, jwks_url: str, token: str, calls: int) -> float:
    """CPU microseconds per request, calling the ASGI app in-process (no socket, no server).

    Measured with ``time.process_time`` (best of 5), so neighbours on a busy machine barely
    move it: it isolates what the framework and the authentication cost per request.
    """
    app = build_app(mode, jwks_url)
    headers = [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode())]
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/me",
        "raw_path": b"/me",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def run() -> float:
        status: list[int] = []

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        async def one() -> None:
            await app(dict(scope), receive, send)

        for _ in range(50):  # warm up: JWKS fetch, token cache, lazy imports
            await one()
        best = float("inf")
        for _ in range(5):
            status.clear()
            start = time.process_time()
            for _ in range(calls):
                await one()
            best = min(best, (time.process_time() - start) / calls)
            if set(status) != {200}:
                raise SystemExit(f"{mode}: in-process answers {sorted(set(status))}")
        return best * 1e6

    return asyncio.run(run())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per variant")
    parser.add_argument("--rounds", type=int, default=5, help="slices the load is split into")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--loader", choices=("wrk", "httpx"), default=None)
    parser.add_argument("--calls", type=int, default=2000, help="in-process calls per sample")
    args = parser.parse_args(argv)
    loader = args.loader or ("wrk" if shutil.which("wrk") else "httpx")
    load = load_wrk if loader == "wrk" else load_httpx

    sys.path.insert(0, str(ROOT / "src"))
    from jwkit import JWK
    from jwkit.jose import jwt

    key = JWK.generate("ES256")
    now = int(time.time())
    token = jwt.encode(
        {"sub": "bench", "aud": AUDIENCE, "iat": now, "exp": now + 3600, "scope": "read"}, key
    )
    body = json.dumps({"keys": [key.public().to_dict()]}).encode()

    # All servers run at once; the load visits them in turn, round after round, so a change
    # in the machine's background load hits every variant alike. Each variant's figure is its
    # best round (the one least disturbed by neighbours).
    samples: dict[str, list[float]] = {mode: [] for mode in MODES}
    cpu: dict[str, float] = {}
    slice_seconds = max(1.0, args.duration / args.rounds)
    with jwks_server(body) as jwks_url, contextlib.ExitStack() as stack:
        urls = {mode: stack.enter_context(app_server(mode, jwks_url)) for mode in MODES}
        for url in urls.values():
            check(url, token)
            load(url, token, args.warmup, args.connections)
        for _ in range(args.rounds):
            for mode, url in urls.items():
                samples[mode].append(load(url, token, slice_seconds, args.connections))
        for mode in MODES:
            cpu[mode] = cpu_per_request(mode, jwks_url, token, args.calls)

    rates = {mode: max(values) for mode, values in samples.items()}
    base = rates["unprotected"]
    print(
        f"\nFastAPI endpoint, uvicorn (1 worker) on 127.0.0.1, load from {loader} with "
        f"{args.connections} connections, best of {args.rounds} rounds of {slice_seconds:g} s, "
        f"ES256 token, {os.cpu_count()} CPUs\n"
    )
    print("| endpoint | req/s | vs unprotected | CPU µs/request in-process | extra µs |")
    print("|---|---:|---:|---:|---:|")
    for mode in MODES:
        print(
            f"| {LABELS[mode]} | {rates[mode]:,.0f} | {rates[mode] / base:.2f} "
            f"| {cpu[mode]:.1f} | {cpu[mode] - cpu['unprotected']:+.1f} |"
        )

    def verdict(mode: str) -> str:
        return "met" if rates[mode] >= 0.9 * base else "missed"

    print(
        f"\njwkit dependency vs PyJWT: {rates['jwkit'] / rates['pyjwt']:.2f}x req/s; "
        f"vs a no-op FastAPI dependency: {rates['jwkit'] / rates['noop-dependency']:.2f}\n"
        f"goal, >= 0.9 of unprotected req/s: dependency {verdict('jwkit')}, "
        f"middleware {verdict('jwkit-middleware')}"
    )


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        main()
