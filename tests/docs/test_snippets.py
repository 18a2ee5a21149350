"""Every Python block of the site runs, as a reader would run it: the blocks of a page in order,
in one fresh interpreter, with ``JWKIT_URL`` and ``JWKIT_ADMIN_TOKEN`` naming a real
``jwkit serve`` (the pages that talk to the key service read them, as the key service
quickstart says). jwkit's warning about a verifier without an audience fails the page: the
docs show none. A block that cannot run says why (``<!-- not run: reason -->``) and is on the
short list in :func:`test_blocks_not_run_say_why`."""

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
DOCS = ROOT / "docs"
QUICKSTART = DOCS / "quickstart"
#: Every page of the site with a Python block, and those with a block that runs.
ALL_PAGES = sorted(p for p in DOCS.rglob("*.md") if python_blocks(p))
PAGES = [p for p in ALL_PAGES if any(b.run for b in python_blocks(p))]
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
    assert sorted(p.name for p in QUICKSTART.glob("*.md")) == [
        "dpop.md", "key-service.md", "protect-an-api.md", "providers.md",
    ]  # fmt: skip
    assert all(page in PAGES for page in QUICKSTART.glob("*.md"))


def _page_id(page: Path) -> str:
    return str(page.relative_to(DOCS).with_suffix(""))


@pytest.mark.parametrize("page", PAGES, ids=[_page_id(p) for p in PAGES])
def test_page_blocks_run(page: Path, tmp_path: Path, server: ServerProcess) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWKIT_")}
    env.update(JWKIT_URL=server.url, JWKIT_ADMIN_TOKEN=server.env["JWKIT_ADMIN_TOKEN"])
    out = run_page(page, tmp_path, env)
    if page == QUICKSTART / "providers.md":
        assert out.strip().endswith("refused: malformed")


#: The blocks that do not run, each with its reason in the page: fragments of an app or of a
#: call whose whole runs elsewhere (a quickstart, ``examples/``, a test named in the reason), or
#: code that needs a third party's tenant and tokens. A new block runs, or joins this list.
NOT_RUN = [
    ("console.md", "import sys"),
    ("index.md", "from jwkit import Verifier"),
    ("integrations.md", "auth = BearerAuth(verifier)"),
    ("integrations.md", "app = Starlette(routes=routes, middleware=["),
    ("integrations.md", "jwkit = JWKit(app, verifier)"),
    ("integrations.md", "# settings.py"),
    ("migrating.md", "from jwkit import Verifier"),
    ("providers.md", 'Verifier.from_provider("cognito", region="eu-west-1",'),
    ("quickstart/protect-an-api.md", "# settings.py"),
    ("quickstart/protect-an-api.md", "# views.py"),
    ("revocation.md", "from jwkit import Verifier, TokenRevoked"),
    ("verifier.md", "from jwkit import Verifier"),
    ("verifier.md", "health = verifier.health()"),
    ("verifier.md", "from jwkit import MultiVerifier, Verifier"),
    ("verifier.md", "from jwkit import DPoPVerifier, Verifier"),
]


def test_blocks_not_run_say_why() -> None:
    skipped = [b for page in ALL_PAGES for b in python_blocks(page) if not b.run]
    found = [(str(b.page.relative_to(DOCS)), b.code.splitlines()[0]) for b in skipped]
    assert len(found) == len(NOT_RUN)
    for (page, first), (want_page, want_start) in zip(found, NOT_RUN, strict=True):
        assert page == want_page and first.startswith(want_start), (page, first)
