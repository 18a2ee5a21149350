"""Pytest fixtures around :mod:`tests.support.jwks_server`.

Use from a ``conftest.py``: ``from tests.support.fixtures import jwks_server  # noqa: F401``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.jwks_server import JWKSServer


@pytest.fixture
def jwks_server() -> Iterator[JWKSServer]:
    """A started :class:`JWKSServer` (nothing served yet), stopped after the test."""
    server = JWKSServer().start()
    try:
        yield server
    finally:
        server.stop()
