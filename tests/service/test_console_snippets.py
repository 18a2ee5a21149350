"""Every copy-ready snippet the console shows runs as shown against a live ``jwkit serve``.

For each algorithm a project offers, the test logs into the console like a person, takes the
snippets from the rendered page (not from ``snippets.py``), saves each next to the key file the
console hands out (``public_key.json``, or ``secret_jwks.json`` for HS256), and runs it:
Python scripts in a subprocess, the FastAPI app under uvicorn, the Node script with ``node``
and the ``jose`` package (installed into ``.cache/node`` as ``tests/interop`` does). Each must
accept a freshly minted token (and the app must refuse a request without one).
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from jwkit.service.domain.projects import SUPPORTED_ALGORITHMS
from tests.support.node import npm_lock
from tests.support.serve import free_port

from .conftest import ADMIN_PASSWORD, AUTH

REPO = Path(__file__).resolve().parents[2]
NODE_MODULES = REPO / ".cache" / "node" / "node_modules"
_SNIPPET = re.compile(r'<pre class="code" id="snippet-(\w+)" tabindex="0">(.*?)</pre>', re.S)


def _log_in(client: httpx.Client) -> None:
    """A console session, the way the login form gets one."""
    form = client.get("/console/login").text
    csrf = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    r = client.post(
        "/console/login", data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": csrf}
    )
    assert r.status_code == 303, r.text


def _node_jose() -> Path | None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return None
    with npm_lock(NODE_MODULES.parent):  # pytest-xdist workers: one install at a time
        if not (NODE_MODULES / "jose" / "package.json").is_file():
            subprocess.run(
                [npm, "install", "--prefix", str(NODE_MODULES.parent), "--no-audit", "--no-fund",
                 "jose@6"],
                check=True,
                capture_output=True,
                timeout=100,
            )  # fmt: skip
    return NODE_MODULES


def _run(args: list[str], cwd: Path) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{args[:2]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _serve_app(cwd: Path, token: str) -> None:
    """``uvicorn app:app`` as the snippet's first line says (on a free port)."""
    for _ in range(5):
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app:app", "--port", str(port),
             "--log-level", "warning"],
            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    r = httpx.get(
                        f"http://127.0.0.1:{port}/me", headers={"Authorization": f"Bearer {token}"}
                    )
                except httpx.HTTPError:
                    time.sleep(0.1)  # polling a subprocess's readiness
                    continue
                assert r.status_code == 200, r.text
                assert r.json() == {"sub": "snippet-user"}
                assert httpx.get(f"http://127.0.0.1:{port}/me").status_code == 401
                return
        finally:
            proc.terminate()
            out = proc.communicate(timeout=15)[0]
        if "address already in use" not in out:
            raise AssertionError(f"the FastAPI snippet did not serve:\n{out}")
    raise AssertionError("no free port for the FastAPI snippet")


def _run_all(
    api: httpx.Client, console: httpx.Client, node_modules: Path | None, tmp_path: Path
) -> list[str]:
    ran: list[str] = []
    for alg in SUPPORTED_ALGORITHMS:
        created = api.post("/api/v1/projects", json={"name": f"snippets {alg}", "algorithm": alg})
        assert created.status_code == 201, created.text
        project = created.json()
        pid = project["id"]
        work = tmp_path / alg
        work.mkdir()
        if alg.startswith("HS"):  # shown once, when the project was created
            (work / "secret_jwks.json").write_text(json.dumps(project["secret_jwks"]))
        else:  # what the JSON Web Key panel's Download button saves
            (active,) = [
                k
                for k in api.get(f"/api/v1/projects/{pid}/keys").json()["keys"]
                if k["state"] == "active"
            ]
            (work / "public_key.json").write_text(json.dumps(active["public_jwk"]))
        page = console.get(f"/console/projects/{pid}")
        assert page.status_code == 200
        snippets = {name: html.unescape(text) for name, text in _SNIPPET.findall(page.text)}
        assert set(snippets) == {"python", "fastapi", "node"}, alg
        minted = api.post(f"/api/v1/projects/{pid}/tokens", json={"sub": "snippet-user"})
        token = minted.json()["access_token"]

        (work / "verify.py").write_text(snippets["python"])
        assert _run([sys.executable, "verify.py", token], work).startswith("snippet-user ")
        (work / "app.py").write_text(snippets["fastapi"])
        _serve_app(work, token)
        ran += [f"python {alg}", f"fastapi {alg}"]
        if node_modules is not None:
            (work / "node_modules").symlink_to(node_modules, target_is_directory=True)
            (work / "verify.mjs").write_text(snippets["node"])
            assert "sub: 'snippet-user'" in _run(["node", "verify.mjs", token], work)
            ran.append(f"node {alg}")
    return ran


@pytest.mark.timeout(600)
def test_every_console_snippet_verifies_a_fresh_token(spawn: Any, tmp_path: Path) -> None:
    server = spawn(tmp_path / "server")
    node_modules = _node_jose()
    with (
        httpx.Client(base_url=server.url, headers=AUTH, timeout=20) as api,
        httpx.Client(base_url=server.url, timeout=20) as console,
    ):
        _log_in(console)
        ran = _run_all(api, console, node_modules, tmp_path)
    if node_modules is None:
        pytest.skip(f"ran {len(ran)} snippets; the Node ones need `node` and `npm` on the PATH")
    assert len(ran) == 3 * len(SUPPORTED_ALGORITHMS)
