"""The runnable apps in ``examples/``: they check the audience and keep off port 8000 (where
``make run`` puts the key service). Issue 13, items 14 and 15."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from jwkit import JWK
from jwkit.jose import jwt

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
AUDIENCE = "https://api.example"


def _token(key: JWK, aud: str) -> str:
    now = int(time.time())
    return jwt.encode({"sub": "u1", "aud": aud, "iat": now, "exp": now + 60, "scope": "read"}, key)


def _load(name: str, monkeypatch: pytest.MonkeyPatch, key_file: Path) -> ModuleType:
    monkeypatch.delenv("JWKIT_EXAMPLE_JWKS_URL", raising=False)
    monkeypatch.setenv("JWKIT_EXAMPLE_JWK_FILE", str(key_file))
    monkeypatch.setenv("JWKIT_EXAMPLE_AUDIENCE", AUDIENCE)
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def key(tmp_path: Path) -> tuple[JWK, Path]:
    private = JWK.generate("ES256")
    path = tmp_path / "public_key.json"
    path.write_text(private.public().to_json())
    return private, path


def _client(name: str, module: Any) -> Any:
    if name == "flask_app":
        return module.app.test_client()
    from starlette.testclient import TestClient

    return TestClient(module.app)


@pytest.mark.parametrize("name", ["fastapi_app", "flask_app", "starlette_app"])
def test_example_accepts_its_audience_only(
    name: str, key: tuple[JWK, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    private, path = key
    client = _client(name, _load(name, monkeypatch, path))
    good = client.get("/me", headers={"Authorization": f"Bearer {_token(private, AUDIENCE)}"})
    assert good.status_code == 200
    other = _token(private, "https://another-api.example")
    assert client.get("/me", headers={"Authorization": f"Bearer {other}"}).status_code == 401


@pytest.mark.parametrize("name", ["fastapi_app", "flask_app", "starlette_app", "django_app"])
def test_example_refuses_to_start_without_an_audience(name: str, key: tuple[JWK, Path]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWKIT_EXAMPLE_")}
    env["JWKIT_EXAMPLE_JWK_FILE"] = str(key[1])
    code = f"import runpy; runpy.run_path({str(EXAMPLES / (name + '.py'))!r})"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.returncode != 0
    assert "set JWKIT_EXAMPLE_AUDIENCE" in result.stderr


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.py")), ids=lambda p: p.name)
def test_examples_keep_off_port_8000(path: Path) -> None:
    text = path.read_text()
    assert not re.search(r"(127\.0\.0\.1|localhost):8000|[\"']8000[\"']|--port 8000", text)
    assert any(port in text for port in ("8001", "8002", "5000"))
