"""Griffe extension: the Sphinx roles of jwkit's docstrings become cross-references.

jwkit's docstrings name other objects the Sphinx way (``:class:`Verifier```,
``:func:`~jwkit.jose.jws.parse```). Each role is resolved in the scope of the object whose
docstring holds it, as Python would resolve the name there:

* a name that resolves to an object of the package becomes an optional link (a link where the
  site documents that object, plain code where it does not, as for private helpers);
* a module of another library (``:mod:`hmac```) is shown as code;
* a name that resolves to nothing (a typo, a renamed function) stays a required reference,
  which fails ``mkdocs build --strict``: a docstring cannot point at what does not exist.
"""

from __future__ import annotations

import html
import importlib.util
import re
from typing import Any

from griffe import (
    Alias,
    AliasResolutionError,
    Extension,
    GriffeLoader,
    Module,
    NameResolutionError,
    Object,
)

_ROLE = re.compile(
    r":(?:py:)?(?P<role>class|func|meth|mod|data|attr|exc|obj|const)"
    r":`(?P<tilde>~?)(?P<target>[\w.]+)(?P<call>\(\))?`"
)


class SphinxRoles(Extension):
    def on_package(self, *, pkg: Module, loader: GriffeLoader, **kwargs: Any) -> None:
        if pkg.name != "jwkit":
            return
        self._walk(pkg, loader, set())

    def _walk(self, obj: Object, loader: GriffeLoader, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None:
            obj.docstring.value = _ROLE.sub(
                lambda m: self._link(m, obj, loader), obj.docstring.value
            )
        for member in obj.members.values():
            if not isinstance(member, Alias):
                self._walk(member, loader, seen)

    def _link(self, match: re.Match[str], obj: Object, loader: GriffeLoader) -> str:
        target = match["target"].lstrip(".")
        shown = target.rsplit(".", 1)[-1] if match["tilde"] else target
        shown = html.escape(shown + (match["call"] or ""))
        path = _resolve(target, obj, loader)
        if path is None:
            return f'<autoref identifier="{html.escape(target)}"><code>{shown}</code></autoref>'
        return f'<autoref identifier="{path}" optional><code>{shown}</code></autoref>'


def _exists(path: str, loader: GriffeLoader) -> bool:
    try:
        loader.modules_collection.get_member(path)
    except (KeyError, ValueError, AttributeError):
        return False
    return True


def _resolve(target: str, obj: Object, loader: GriffeLoader) -> str | None:
    """The full path ``target`` names in ``obj``'s scope, or None when it names nothing."""
    if _exists(target, loader):
        return target
    head, _, rest = target.partition(".")
    scope: Object | None = obj
    while scope is not None:
        try:
            base = scope.resolve(head)
        except (NameResolutionError, AliasResolutionError):
            base = None
        full = f"{base}.{rest}" if base and rest else base
        if full and _exists(full, loader):
            return full
        scope = scope.parent
    # A method named from its class's docstring (``:meth:`verify```) or a sibling attribute.
    parent = obj if obj.is_class else obj.parent
    if parent is not None and _exists(f"{parent.path}.{target}", loader):
        return f"{parent.path}.{target}"
    # Another library (``:mod:`hmac```): shown as code, never a link, but it must exist.
    if head != "jwkit" and importlib.util.find_spec(head) is not None:
        return target
    return None
