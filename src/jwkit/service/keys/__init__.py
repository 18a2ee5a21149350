"""Where signing keys live: one seam, two backends.

A :class:`KeyBackend` generates a key for a project and algorithm, gives the service a
:class:`Signer` for a stored key (found again after a restart from what the ``keys`` row
holds), and destroys a key. Two backends exist:

* ``local`` (:mod:`.local`): the private key sealed with AES-256-GCM in the database (the
  :class:`~jwkit.service.vault.Vault`), opened once into process memory.
* ``pkcs11`` (:mod:`.pkcs11`): the private key generated inside a PKCS#11 token (an HSM,
  SoftHSM2), non-extractable; the database keeps only its label and the public key.

The domain (rotation, schedule, publication) never asks which backend holds a key: it calls
:func:`generate` with the vault it was handed, and the :class:`Keyring` the service builds
(a :class:`~jwkit.service.vault.Vault` that also knows the backends) picks the configured one.
Each row records its backend (``keys.backend``), so keys made before a change of
``JWKIT_KEY_BACKEND`` keep signing where they live.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from jwkit.jose.jwk import JWK
from jwkit.jose.jwt import Encoder
from jwkit.service.domain.common import InvalidInput, ServiceError
from jwkit.service.vault import Vault

__all__ = [
    "LOCAL",
    "PKCS11",
    "KeyBackend",
    "KeyBackendError",
    "KeyUnavailable",
    "Keyring",
    "NewKey",
    "Signer",
    "generate",
    "open_keyring",
]

log = logging.getLogger("jwkit.service.keys")

LOCAL, PKCS11 = "local", "pkcs11"


class KeyBackendError(RuntimeError):
    """The configured key backend cannot be used (module missing, token not found, wrong
    PIN): the service refuses to start rather than fall back to software keys."""


class KeyUnavailable(ServiceError):
    """A key cannot sign now: its backend is unreachable, the key is gone from it, or the
    signature it returned does not verify. Answered 503; never a token."""

    code = "key_unavailable"
    status = 503

    def __init__(self, message: str, *, code: str | None = None, kid: str | None = None) -> None:
        super().__init__(message, code=code)
        self.kid = kid


class UnsupportedByBackend(InvalidInput):
    """An algorithm this backend cannot hold (e.g. a shared secret in an HSM)."""

    code = "unsupported_by_backend"


@dataclass(frozen=True, slots=True)
class NewKey:
    """What the ``keys`` row stores for a freshly generated key."""

    kid: str
    public_jwk: Mapping[str, Any] | None
    backend: str
    #: The sealed private key (``local``); empty for keys held elsewhere.
    wrapped_dek: bytes = b""
    ciphertext: bytes = b""
    kek_id: str = ""
    #: How the backend finds the key again (the PKCS#11 label); ``None`` for ``local``.
    handle: str | None = None


class Signer:
    """One key as the service signs with it, wherever its private half lives.

    ``jwk`` is the key as the JOSE core knows it: the private JWK for ``local`` keys, the
    public JWK for keys held elsewhere, whose ``external`` function signs (and verifies what
    it got back before returning it)."""

    __slots__ = ("alg", "backend", "external", "jwk", "kid")

    def __init__(
        self,
        jwk: JWK,
        *,
        backend: str = LOCAL,
        external: Callable[[bytes], bytes] | None = None,
    ) -> None:
        assert jwk.kid is not None
        self.jwk = jwk
        self.kid: str = jwk.kid
        self.alg = jwk.default_alg
        self.backend = backend
        self.external = external

    def encoder(self, headers: Mapping[str, Any] | None = None) -> Encoder:
        """A JWT encoder for this key (raises :class:`~jwkit.errors.JWKError` if it cannot
        sign)."""
        return Encoder(self.jwk, headers=headers, sign=self.external)

    def __repr__(self) -> str:
        return f"Signer(kid={self.kid!r}, alg={self.alg!r}, backend={self.backend!r})"


class KeyBackend(Protocol):
    """The seam every key backend implements."""

    name: str

    def generate(self, project_id: str, alg: str) -> NewKey:
        """Make a new key for ``project_id`` and ``alg``."""

    def signer(self, key: Any) -> Signer:
        """The signer of a stored key (a ``keys`` row); raises :class:`KeyUnavailable`."""

    def destroy(self, key: Any) -> bool:
        """Destroy a revoked key where it lives; whether something was destroyed."""

    def close(self) -> None:
        """Release sessions and handles."""


class Keyring(Vault):
    """The service's vault (it still seals ``local`` keys under the master key) together
    with the key backends: ``default`` makes new keys, each stored key signs where its row
    says it lives."""

    __slots__ = ("_backends", "default")

    def __init__(
        self, master_key: bytes, *, default: str = LOCAL, backends: Iterable[KeyBackend] = ()
    ) -> None:
        super().__init__(master_key)
        from jwkit.service.keys.local import LocalBackend

        self._backends: dict[str, KeyBackend] = {LOCAL: LocalBackend(self)}
        for backend in backends:
            self._backends[backend.name] = backend
        if default not in self._backends:
            raise KeyBackendError(f"key backend {default!r} is not configured")
        self.default = default

    def __repr__(self) -> str:
        return f"Keyring(kek_id={self.kek_id!r}, default={self.default!r})"

    @property
    def holds_elsewhere(self) -> bool:
        """Whether any backend keeps keys outside the database (revoked ones need destroying)."""
        return any(name != LOCAL for name in self._backends)

    def backend(self, name: str) -> KeyBackend:
        found = self._backends.get(name)
        if found is None:
            raise KeyUnavailable(
                f"this key lives in the {name!r} backend, which is not configured "
                "(JWKIT_KEY_BACKEND / JWKIT_PKCS11_MODULE)",
                code="key_backend_not_configured",
            )
        return found

    def generate(self, project_id: str, alg: str) -> NewKey:
        return self._backends[self.default].generate(project_id, alg)

    def signer(self, key: Any) -> Signer:
        return self.backend(key.backend or LOCAL).signer(key)

    def destroy(self, key: Any) -> bool:
        return self.backend(key.backend or LOCAL).destroy(key)

    def close(self) -> None:
        for backend in self._backends.values():
            try:
                backend.close()
            except Exception as exc:  # closing must not hide the reason for closing
                log.warning("closing key backend %s: %s", backend.name, type(exc).__name__)


def generate(vault: Vault, project_id: str, alg: str) -> NewKey:
    """A new key from the vault's configured backend (a plain :class:`Vault`: ``local``)."""
    if isinstance(vault, Keyring):
        return vault.generate(project_id, alg)
    from jwkit.service.keys.local import LocalBackend

    return LocalBackend(vault).generate(project_id, alg)


def open_keyring(settings: Any, master_key: bytes) -> Keyring:
    """The keyring ``settings`` ask for. A PKCS#11 module is opened when
    ``JWKIT_KEY_BACKEND=pkcs11`` (new keys go there) or when only ``JWKIT_PKCS11_MODULE`` is
    set (keys made there before keep signing while new ones are ``local``). Any problem
    raises :class:`KeyBackendError`: never a silent fallback to software keys."""
    backends: list[KeyBackend] = []
    if settings.key_backend == PKCS11 or settings.pkcs11_module is not None:
        if settings.pkcs11_module is None:
            raise KeyBackendError("JWKIT_KEY_BACKEND=pkcs11 needs JWKIT_PKCS11_MODULE")
        try:
            from jwkit.service.keys.pkcs11 import Pkcs11Backend, Pkcs11Config
        except ImportError:
            raise KeyBackendError(
                "the pkcs11 key backend needs python-pkcs11: pip install 'jwkit[hsm]'"
            ) from None
        config = Pkcs11Config(
            module=settings.pkcs11_module,
            token_label=settings.pkcs11_token_label,
            slot=settings.pkcs11_slot,
            pin=_pin(settings),
        )
        backends.append(Pkcs11Backend(config))
    return Keyring(master_key, default=settings.key_backend, backends=backends)


def _pin(settings: Any) -> str:
    if settings.pkcs11_pin is not None and settings.pkcs11_pin_file is not None:
        raise KeyBackendError("set JWKIT_PKCS11_PIN or JWKIT_PKCS11_PIN_FILE, not both")
    if settings.pkcs11_pin is not None:
        return str(settings.pkcs11_pin.get_secret_value())
    path = settings.pkcs11_pin_file
    if path is None:
        raise KeyBackendError(
            "the pkcs11 key backend needs JWKIT_PKCS11_PIN or JWKIT_PKCS11_PIN_FILE"
        )
    try:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise KeyBackendError(f"{path} must not be readable by group/others (mode {mode:o})")
        return str(path.read_text("utf-8").rstrip("\r\n"))
    except OSError as exc:
        raise KeyBackendError(f"cannot read the PIN file {path}: {exc.strerror}") from None
