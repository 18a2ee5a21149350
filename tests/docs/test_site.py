"""The documentation site builds in strict mode (a broken link, a missing page or a docstring
reference that does not resolve fails it), and its generated reference covers every public
name, every command and every admin route."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import zlib
from pathlib import Path

import click
import pytest
from fastapi.routing import APIRoute

from jwkit.cli import main as cli_main
from jwkit.service.http.admin import router as admin_router
from jwkit.service.http.migration import router as migration_router

pytestmark = pytest.mark.docs

ROOT = Path(__file__).resolve().parents[2]

#: The modules whose ``__all__`` is the public API the reference must document.
PUBLIC_MODULES = (
    "jwkit",
    "jwkit.jose",
    "jwkit.verify",
    "jwkit.integrations",
    "jwkit.integrations.fastapi",
    "jwkit.integrations.starlette",
    "jwkit.integrations.flask",
    "jwkit.integrations.django",
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWKIT_")}
    env["NO_MKDOCS_2_WARNING"] = "1"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    return out


def inventory(site: Path) -> set[str]:
    """The names mkdocstrings documented (Sphinx ``objects.inv``, version 2)."""
    raw = (site / "objects.inv").read_bytes()
    header_end = 0
    for _ in range(4):
        header_end = raw.index(b"\n", header_end) + 1
    body = zlib.decompress(raw[header_end:]).decode()
    return {line.split(" ", 1)[0] for line in body.splitlines()}


def test_config_is_strict() -> None:
    assert re.search(r"^strict: true$", (ROOT / "mkdocs.yml").read_text(), re.M)


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_every_public_name_is_in_the_api_reference(site: Path, module: str) -> None:
    names = inventory(site)
    exported = importlib.import_module(module).__all__
    assert sorted(n for n in exported if f"{module}.{n}" not in names) == []


def _commands(group: click.Group, prefix: str) -> list[str]:
    found = []
    for name, command in group.commands.items():
        found.append(f"{prefix} {name}")
        if isinstance(command, click.Group):
            found += _commands(command, f"{prefix} {name}")
    return found


def test_every_command_is_in_the_cli_reference(site: Path) -> None:
    page = (site / "reference" / "cli" / "index.html").read_text()
    commands = _commands(cli_main, "jwkit")
    assert len(commands) > 10
    assert [c for c in commands if f">{c}<" not in page] == []
    assert "Sentinel" not in page  # click's UNSET marker shown as a default (table style)


def test_every_admin_route_is_in_the_http_reference(site: Path) -> None:
    page = (site / "reference" / "admin-api" / "index.html").read_text()
    document = json.loads((site / "reference" / "openapi.json").read_text())
    routes = [
        (method.upper(), route.path_format)
        for route in [*admin_router.routes, *migration_router.routes]
        if isinstance(route, APIRoute) and route.include_in_schema
        for method in route.methods
    ]
    assert len(routes) >= 15
    for method, path in routes:
        assert method.lower() in document["paths"][path]
        assert f"{method} {path}</code>" in page, (method, path)


def test_security_page_is_security_md(site: Path) -> None:
    page = (site / "security" / "index.html").read_text()
    first_heading = re.search(r"^# (.+)$", (ROOT / "SECURITY.md").read_text(), re.M)
    assert first_heading is not None
    assert first_heading.group(1).split("`")[0].strip() in page


def test_provider_quickstart_has_a_tab_per_provider(site: Path) -> None:
    page = (site / "quickstart" / "providers" / "index.html").read_text()
    labels = re.findall(r'<label for="__tabbed_\d+_\d+">([^<]+)</label>', page)
    assert labels == ["Auth0", "Okta", "Cognito", "Clerk"]


def test_no_docstring_role_is_left_raw(site: Path) -> None:
    for page in (site / "reference").glob("*/index.html"):
        raw = re.findall(
            r":(?:class|func|meth|mod|data|attr|exc|obj):(?:`|<code>)", page.read_text()
        )
        assert raw == [], page


def test_rotation_guide_shows_the_console_timeline(site: Path) -> None:
    """The picture is the console's drawing of the hook's scenario (two scheduled rotations):
    from the newest key down, next, active, retiring with its time left, revoked."""
    svg = (site / "img" / "rotation-timeline.svg").read_text()
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"')
    rows = re.findall(r'<g data-kid="[^"]+">(.*?)</g>', svg, re.S)
    bars = [
        [state + (" (scheduled)" if planned else "") for state, planned in
         re.findall(r'class="bar bar-(\w+)( bar-planned)?"', row)]
        for row in rows
    ]  # fmt: skip
    assert bars == [
        ["next", "active (scheduled)"],
        ["next", "active", "retiring (scheduled)"],
        ["next", "active", "retiring", "retiring (scheduled)", "revoked (scheduled)"],
        ["next", "active", "retiring", "revoked"],
    ]
    page = (site / "guides" / "key-rotation" / "index.html").read_text()
    assert 'src="../../img/rotation-timeline.svg"' in page
