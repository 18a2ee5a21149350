"""Shared fixtures for the interop tests: a claims set, and Node's ``jose`` package.

Node's ``jose`` is installed once into ``<repo>/.cache/node`` (ignored by git) with
``npm install --prefix <repo>/.cache/node jose@6``; later sessions reuse it. The tests that need
it are skipped, with the reason, only when ``node`` or ``npm`` is not on the PATH; a failing
install is an error, not a skip.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.node import npm_lock

REPO_ROOT = Path(__file__).resolve().parents[2]
NODE_PREFIX = REPO_ROOT / ".cache" / "node"
NODE_HELPER = Path(__file__).resolve().parent / "node" / "jose_helper.mjs"
#: The major version the helper script is written for (jose v6: ESM, WebCrypto keys).
NODE_JOSE_SPEC = "jose@6"

ISSUER = "https://issuer.example.com"
AUDIENCE = "api://interop"

NodeRunner = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


@pytest.fixture
def claims() -> dict[str, Any]:
    """A claims set that exercises the JSON types, non-ASCII text and every time claim."""
    now = int(time.time())
    return {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-42",
        "iat": now,
        "nbf": now - 5,
        "exp": now + 600,
        "jti": secrets.token_hex(8),
        "scope": "read write",
        "name": "Zoë Ångström ✓",
        "nested": {"list": [1, 2.5, True, None, "x"], "empty": {}},
    }


def _major_is(package_json: Path, major: str) -> bool:
    version = str(json.loads(package_json.read_text(encoding="utf-8")).get("version", ""))
    return version.split(".")[0] == major


@pytest.fixture(scope="session")
def node_jose() -> NodeRunner:
    """Run a batch of operations through ``tests/interop/node/jose_helper.mjs``."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Node jose interop needs `node` and `npm` on the PATH")
    installed = NODE_PREFIX / "node_modules" / "jose" / "package.json"
    with npm_lock(NODE_PREFIX):  # pytest-xdist workers: one install at a time
        if not installed.is_file() or not _major_is(installed, NODE_JOSE_SPEC.split("@")[1]):
            subprocess.run(
                [npm, "install", "--prefix", str(NODE_PREFIX), "--no-audit", "--no-fund",
                 NODE_JOSE_SPEC],
                check=True,
                capture_output=True,
                timeout=100,  # inside pytest's 120 s per-test limit, which covers fixture set-up
            )  # fmt: skip

    return _runner(node, NODE_HELPER)


def _runner(node: str, helper: Path) -> NodeRunner:
    """Run a batch of ``{"op": ...}`` operations through a helper script, in one process."""

    def run(ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
        done = subprocess.run(
            [node, str(helper), str(NODE_PREFIX)],
            input=json.dumps({"ops": ops}),
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        results: list[dict[str, Any]] = json.loads(done.stdout)["results"]
        assert len(results) == len(ops)
        return results

    return run


STATUS_LIST_HELPER = Path(__file__).resolve().parent / "node" / "status_list_helper.mjs"
#: An independent Token Status List implementation (OpenWallet Foundation's sd-jwt-js; its
#: zlib is pako), pinned to the minor version the helper is written for.
NODE_STATUS_LIST_SPEC = "@sd-jwt/jwt-status-list@0.19"


@pytest.fixture(scope="session")
def node_status_list() -> NodeRunner:
    """Run a batch of operations through ``tests/interop/node/status_list_helper.mjs``
    (``@sd-jwt/jwt-status-list`` and ``jose``, installed into ``.cache/node`` when missing)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("status list interop needs `node` and `npm` on the PATH")
    modules = NODE_PREFIX / "node_modules"
    with npm_lock(NODE_PREFIX):  # pytest-xdist workers: one install at a time
        _install_status_list(npm, modules)
    return _runner(node, STATUS_LIST_HELPER)


def _install_status_list(npm: str, modules: Path) -> None:
    wanted = []
    installed = modules / "@sd-jwt" / "jwt-status-list" / "package.json"
    if not installed.is_file() or not json.loads(installed.read_text("utf-8"))[
        "version"
    ].startswith("0.19."):
        wanted.append(NODE_STATUS_LIST_SPEC)
    jose_json = modules / "jose" / "package.json"
    if not jose_json.is_file() or not _major_is(jose_json, NODE_JOSE_SPEC.split("@")[1]):
        wanted.append(NODE_JOSE_SPEC)
    if wanted:
        subprocess.run(
            [npm, "install", "--prefix", str(NODE_PREFIX), "--no-audit", "--no-fund", *wanted],
            check=True,
            capture_output=True,
            timeout=100,
        )
