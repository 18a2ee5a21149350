"""Where a verifier's keys come from.

A *key source* hands the :class:`~jwkit.verify.verifier.Verifier` the current
:class:`~jwkit.JWKSet` and tells it when keys leave (rotation, revocation, a replaced
file), so the verified-token cache can drop every entry made with a key that is gone.

- :class:`StaticKeySource`: keys given in code (a JWK, a JWKS, a PEM, a secret).
- :class:`FileKeySource`: a JWK or JWKS file, re-read when it changes on disk.
- :class:`~jwkit.verify.remote.RemoteJWKSource`: a JWKS URL or OpenID discovery.

All of them share :class:`BaseKeySource`, which keeps the listeners and works out which keys
were removed by comparing keys (their material plus ``kid``/``alg``/``use``/``key_ops``: the
same key material published under another ``kid`` is another key for selection purposes).
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..errors import JWKError, KeySourceError
from ..jose.jwk import JWK, JWKSet

__all__ = [
    "BaseKeySource",
    "FileKeySource",
    "KeyListener",
    "KeySource",
    "PrivateKeyWarning",
    "SourceHealth",
    "StaticKeySource",
    "load_key_file",
]

logger = logging.getLogger("jwkit")


class PrivateKeyWarning(UserWarning):
    """A verifier was given a private key. It keeps only the public part, but the private
    key should not be where verifiers run: deployed to every API server, it is a leak.
    Give verifiers the public key (``public_key.json``, the JWKS URL) instead."""


def _public_only(keys: list[JWK], where: str) -> list[JWK]:
    """The keys with every asymmetric private part dropped, warning once if there was one
    (a shared secret stays: HMAC verifies with it)."""
    private = [k for k in keys if k.is_private and not k.is_symmetric]
    if not private:
        return keys
    kids = ", ".join(repr(k.kid) for k in private if k.kid) or "without kid"
    warnings.warn(
        f"{where} holds a private key ({kids}); the verifier uses only its public part. "
        "Give verifiers the public key (public_key.json or the JWKS URL): a private key "
        "on every API server is a leak.",
        PrivateKeyWarning,
        stacklevel=_caller_level(),
    )
    return [k.public() if k.is_private and not k.is_symmetric else k for k in keys]


def _caller_level() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside jwkit."""
    frame = inspect.currentframe()
    level = 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith("jwkit."):
        frame = frame.f_back
        level += 1
    return level - 1


#: Called with the keys that left a source (they are never handed out again).
KeyListener = Callable[[Collection[JWK]], None]


@dataclass(frozen=True)
class SourceHealth:
    """A snapshot of a key source for readiness checks and logs.

    ``ok`` is true while the source can hand out keys that are not older than it allows
    (fresh, or stale within ``max_stale`` for remote sources). Times are UTC; ages are
    seconds. ``last_error`` is a short description of the last failed refresh, never a
    key or a token.
    """

    source: str
    ok: bool
    key_count: int
    last_fetch: datetime | None = None
    age: float | None = None
    expires_in: float | None = None
    stale: bool = False
    last_error: str | None = None
    last_error_at: datetime | None = None
    consecutive_failures: int = 0
    fetch_count: int = 0


@runtime_checkable
class KeySource(Protocol):
    """What a :class:`~jwkit.verify.verifier.Verifier` needs from where its keys live.

    ``remote`` is true when keys come from the network: a verifier then never defaults to
    symmetric (``HS*``) algorithms. ``refresh_for_kid`` is called when a token names a
    ``kid`` the current set lacks; it returns a newer set, or ``None`` when no refresh was
    allowed (cooldown) or the set did not change.
    """

    remote: bool

    def get_keys(self) -> JWKSet: ...

    async def get_keys_async(self) -> JWKSet: ...

    def refresh_for_kid(self, kid: str) -> JWKSet | None: ...

    async def refresh_for_kid_async(self, kid: str) -> JWKSet | None: ...

    def subscribe(self, listener: KeyListener) -> None: ...

    def health(self) -> SourceHealth: ...

    def close(self) -> None: ...

    async def aclose(self) -> None: ...


class BaseKeySource:
    """Listener bookkeeping and change detection shared by every source."""

    remote: bool = False

    def __init__(self) -> None:
        self._listeners: list[Callable[[], KeyListener | None]] = []
        self._current: dict[JWK, JWK] = {}
        self._change_lock = threading.Lock()

    def subscribe(self, listener: KeyListener) -> None:
        """Call ``listener(removed_keys)`` whenever keys leave this source.

        A bound method is held weakly, so a verifier that is dropped does not stay alive
        through the source it subscribed to.
        """
        ref: Callable[[], KeyListener | None]
        if inspect.ismethod(listener):
            ref = weakref.WeakMethod(listener)
        else:
            ref = _strong(listener)
        with self._change_lock:
            self._listeners.append(ref)

    def _install(self, keys: Iterable[JWK]) -> JWKSet:
        """Make ``keys`` current; reuse the objects of unchanged keys; notify removals.

        Reusing the previous object for an unchanged key keeps identities stable, so the
        token cache can tell "this exact key object left" with an ``is`` test.
        """
        with self._change_lock:
            fresh: dict[JWK, JWK] = {}
            for key in keys:
                # JWK equality covers the key material and kid/alg/use/key_ops.
                fresh.setdefault(key, self._current.get(key, key))
            removed = [k for k in self._current.values() if k not in fresh]
            self._current = fresh
            self._listeners = [ref for ref in self._listeners if ref() is not None]
            listeners = [ref() for ref in self._listeners]
            result = JWKSet(list(fresh.values()))
        if removed:
            for listener in listeners:
                if listener is not None:
                    listener(removed)
        return result

    def _drop_all(self) -> None:
        """Forget every key (a source that can no longer vouch for them)."""
        self._install(())

    def refresh_for_kid(self, kid: str) -> JWKSet | None:
        return None

    async def refresh_for_kid_async(self, kid: str) -> JWKSet | None:
        return None

    def close(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    def __enter__(self) -> BaseKeySource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StaticKeySource(BaseKeySource):
    """Keys given in code. :meth:`replace` swaps them (and drops cached tokens of old keys)."""

    def __init__(self, keys: JWK | JWKSet | Iterable[JWK]) -> None:
        super().__init__()
        self._keys = self._install(_checked(_public_only(_as_list(keys), "the key given")))

    def get_keys(self) -> JWKSet:
        return self._keys

    async def get_keys_async(self) -> JWKSet:
        return self._keys

    def replace(self, keys: JWK | JWKSet | Iterable[JWK]) -> None:
        """Make ``keys`` the current set; keys no longer present are announced as removed."""
        self._keys = self._install(_checked(_public_only(_as_list(keys), "the key given")))

    def health(self) -> SourceHealth:
        return SourceHealth(source="static", ok=len(self._keys) > 0, key_count=len(self._keys))

    def __repr__(self) -> str:
        return f"StaticKeySource({len(self._keys)} keys)"


def load_key_file(path: str | os.PathLike[str]) -> list[JWK]:
    """Read a JWK, a JWKS (``{"keys": [...]}``) or a PEM file. Raises :class:`JWKError`."""
    data = Path(path).read_bytes()
    if len(data) > 1 << 20:
        raise JWKError(f"key file {os.fspath(path)!r} is larger than 1 MiB")
    stripped = data.lstrip()
    if stripped.startswith(b"{"):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JWKError("key file is not UTF-8 JSON") from exc
        if b'"keys"' in data:
            try:
                return list(JWKSet.from_json(text).keys)
            except JWKError:
                pass
        return [JWK.from_json(text)]
    return [JWK.from_pem(data)]


class FileKeySource(BaseKeySource):
    """A JWK or JWKS file (such as the ``public_key.json`` a console hands out).

    The file is checked for changes (modification time and size) at most once per
    ``check_interval`` seconds; a changed file is re-read, and keys that left it are
    announced as removed. A file that becomes unreadable or invalid keeps the previous keys
    and logs a warning, so a half-written file never takes an API down.
    """

    def __init__(self, path: str | os.PathLike[str], *, check_interval: float = 1.0) -> None:
        super().__init__()
        self.path = Path(path)
        self.check_interval = check_interval
        self._stamp = self._stat()
        self._keys = self._install(_checked(self._load()))
        self._next_check = time.monotonic() + check_interval
        self._last_error: str | None = None

    def _load(self) -> list[JWK]:
        return _public_only(load_key_file(self.path), os.fspath(self.path))

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def get_keys(self) -> JWKSet:
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + self.check_interval
            stamp = self._stat()
            if stamp != self._stamp:
                self._reload(stamp)
        return self._keys

    def _reload(self, stamp: tuple[int, int] | None) -> None:
        try:
            keys = _checked(self._load())
        except (OSError, JWKError) as exc:
            self._last_error = f"{type(exc).__name__}: {exc}"
            logger.warning("jwkit: keeping the previous keys of %s: %s", self.path, exc)
            return
        self._stamp = stamp
        self._last_error = None
        self._keys = self._install(keys)

    async def get_keys_async(self) -> JWKSet:
        return self.get_keys()

    def health(self) -> SourceHealth:
        return SourceHealth(
            source=str(self.path),
            ok=len(self._keys) > 0,
            key_count=len(self._keys),
            last_error=self._last_error,
        )

    def __repr__(self) -> str:
        return f"FileKeySource({str(self.path)!r})"


def _strong(listener: KeyListener) -> Callable[[], KeyListener]:
    return lambda: listener


def _as_list(keys: JWK | JWKSet | Iterable[JWK]) -> list[JWK]:
    if isinstance(keys, JWK):
        return [keys]
    if isinstance(keys, JWKSet):
        return list(keys.keys)
    out = list(keys)
    for key in out:
        if not isinstance(key, JWK):
            raise TypeError(f"expected JWK objects, got {type(key).__name__}")
    return out


def _checked(keys: list[JWK]) -> list[JWK]:
    """Refuse, up front, a set a verifier must not use (duplicate kid, secret mixed in)."""
    JWKSet(keys).check_verifiable()
    return keys


def require_keys(keys: JWKSet, source: str) -> JWKSet:
    """Raise :class:`KeySourceError` when ``keys`` is empty."""
    if len(keys) == 0:
        raise KeySourceError(f"no usable keys in {source}")
    return keys
