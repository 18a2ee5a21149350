"""Every Python block of the quickstart pages runs, as a reader would run it: the blocks of a
page in order, in one fresh interpreter; the key service page against a real ``jwkit serve``.
jwkit's warning about a verifier without an audience fails the page: a quickstart shows none."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.serve import ServerProcess, server_env

from .snippets import RUNNER, python_blocks

pytestmark = pytest.mark.docs

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "docs" / "quickstart"
PAGES = sorted(QUICKSTART.glob("*.md"))
#: The start of jwkit's ``AudienceWarning`` (``-W`` matches a message by its beginning).
NO_AUDIENCE = "this Verifier has no audience"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("docs-server")
    env = server_env(home, admin_token="quickstart-" + "t" * 32, admin_password="quickstart-pw")
    proc = ServerProcess(home, env).start()
    try:
        yield proc
    finally:
        proc.stop()


def run_page(page: Path, cwd: Path, env: dict[str, str]) -> str:
    blocks = [(str(b.page.relative_to(ROOT)), b.line, b.code) for b in python_blocks(page) if b.run]
    assert blocks, f"{page.name} has no Python block that runs"
    done = subprocess.run(
        [sys.executable, "-W", f"error:{NO_AUDIENCE}", "-c", RUNNER], input=json.dumps(blocks),
        cwd=cwd, env=env, capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_quickstarts_are_there() -> None:
    assert [p.name for p in PAGES] == [
        "dpop.md",
        "key-service.md",
        "protect-an-api.md",
        "providers.md",
    ]


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_quickstart_blocks_run(page: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWKIT_")}
    if page.name in ("key-service.md", "dpop.md"):
        server: ServerProcess = request.getfixturevalue("server")
        env.update(JWKIT_URL=server.url, JWKIT_ADMIN_TOKEN=server.env["JWKIT_ADMIN_TOKEN"])
    out = run_page(page, tmp_path, env)
    if page.name == "providers.md":
        assert out.strip().endswith("refused: malformed")


def test_blocks_not_run_say_why() -> None:
    skipped = [b for page in PAGES for b in python_blocks(page) if not b.run]
    # Only the Django tab's settings.py and views.py (they need a Django project; the same
    # setup runs as examples/django_app.py in tests/integrations/test_django.py).
    assert [(b.page.name, "settings.py" in b.code or "views.py" in b.code) for b in skipped] == [
        ("protect-an-api.md", True),
        ("protect-an-api.md", True),
    ]
