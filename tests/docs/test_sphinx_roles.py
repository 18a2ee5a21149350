"""The griffe extension behind the API reference turns docstring roles into cross-references,
and leaves a reference to nothing as a required one, which fails the strict build."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import griffe
import pytest

pytestmark = pytest.mark.docs

ROOT = Path(__file__).resolve().parents[2]


def _extension_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "sphinx_roles", ROOT / "docs" / "_hooks" / "sphinx_roles.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_roles_become_links_and_a_missing_target_stays_required(tmp_path: Path) -> None:
    package = tmp_path / "jwkit"
    package.mkdir()
    (package / "__init__.py").write_text(
        '"""Top: :class:`~jwkit.keys.Key`, :func:`helper`, :mod:`hmac`, :class:`Gone`."""\n'
        "from .keys import Key\n"
        "from .keys import helper\n"
    )
    (package / "keys.py").write_text(
        "class Key:\n"
        '    """A key; :meth:`sign` signs, :meth:`~jwkit.keys.Key._private` helps."""\n'
        "    def sign(self): ...\n"
        "    def _private(self): ...\n"
        "def helper(): ...\n"
    )
    roles = _extension_module().SphinxRoles()
    pkg = griffe.load(
        "jwkit", search_paths=[str(tmp_path)], extensions=griffe.load_extensions(roles)
    )
    top = pkg.docstring.value
    assert '<autoref identifier="jwkit.keys.Key" optional><code>Key</code></autoref>' in top
    assert '<autoref identifier="jwkit.keys.helper" optional><code>helper</code></autoref>' in top
    assert '<autoref identifier="hmac" optional><code>hmac</code></autoref>' in top
    assert '<autoref identifier="Gone"><code>Gone</code></autoref>' in top  # not optional
    key = pkg["keys.Key"].docstring.value
    assert 'identifier="jwkit.keys.Key.sign" optional><code>sign</code>' in key
    assert 'identifier="jwkit.keys.Key._private" optional><code>_private</code>' in key
