"""The layering rules of docs/architecture.md, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import jwkit

ROOT = Path(jwkit.__file__).parent


def _imports(path: Path) -> set[str]:
    """Absolute jwkit module names imported by one file (relative imports resolved)."""
    package = ".".join(("jwkit", *path.relative_to(ROOT).with_suffix("").parts))
    if path.name != "__init__.py":
        package = package.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("jwkit"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.startswith("jwkit"):
                found.add(module)
                found.update(f"{module}.{a.name}" for a in node.names)
    return found


RULES = [
    ("jose", ("jwkit.verify", "jwkit.integrations", "jwkit.service", "jwkit.cli")),
    ("verify", ("jwkit.integrations", "jwkit.service", "jwkit.cli")),
    ("integrations", ("jwkit.service", "jwkit.cli")),
    ("service/domain", ("jwkit.service.http", "jwkit.cli")),
    ("service/store", ("jwkit.service.http", "jwkit.cli")),
    ("service", ("jwkit.cli",)),
]


@pytest.mark.parametrize(("folder", "forbidden"), RULES, ids=[r[0] for r in RULES])
def test_layers_point_downwards(folder: str, forbidden: tuple[str, ...]) -> None:
    files = sorted((ROOT / folder).rglob("*.py"))
    assert files
    for path in files:
        bad = sorted(m for m in _imports(path) if m.startswith(forbidden))
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_jose_imports_only_errors_of_jwkit() -> None:
    for path in sorted((ROOT / "jose").glob("*.py")):
        outside = {m for m in _imports(path) if not m.startswith(("jwkit.jose", "jwkit.errors"))}
        assert not outside, f"{path.name} imports {outside}"


def test_nothing_imports_the_cli() -> None:
    for path in sorted(ROOT.rglob("*.py")):
        if "cli" in path.relative_to(ROOT).parts:
            continue
        assert not {m for m in _imports(path) if m.startswith("jwkit.cli")}, path


def test_the_import_scanner_sees_relative_imports() -> None:
    # Guards the guard: if the scanner missed imports, every rule above would pass vacuously.
    found = _imports(ROOT / "verify" / "verifier.py")
    assert {"jwkit.jose.jws", "jwkit.errors"} <= found
    assert "jwkit.service.domain.keys" in _imports(ROOT / "service" / "http" / "admin.py")
