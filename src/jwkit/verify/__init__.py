"""The verification SDK: verify any provider's tokens locally.

- :class:`Verifier` (:mod:`~jwkit.verify.verifier`): one issuer, one key source.
- :class:`MultiVerifier` (:mod:`~jwkit.verify.multi`): route by issuer or issuer template.
- Key sources (:mod:`~jwkit.verify.sources`, :mod:`~jwkit.verify.remote`): static keys, a key
  file, a remote JWKS or OpenID discovery.
- Provider presets (:mod:`~jwkit.verify.providers`): :func:`resolve`.
- The verified-token cache (:mod:`~jwkit.verify.cache`).
- DPoP proofs next to DPoP-bound tokens (:mod:`~jwkit.verify.dpop`): :class:`DPoPVerifier`.

Nothing here imports :mod:`jwkit.service`: the SDK installs without the server extra.
"""

from __future__ import annotations

from .cache import TokenCache
from .dpop import DPoPVerifier
from .multi import MultiVerifier
from .providers import PRESETS, ProviderConfig, resolve
from .remote import RemoteJWKSource
from .sources import FileKeySource, KeySource, PrivateKeyWarning, SourceHealth, StaticKeySource
from .verifier import Verifier

__all__ = [
    "PRESETS",
    "DPoPVerifier",
    "FileKeySource",
    "KeySource",
    "MultiVerifier",
    "PrivateKeyWarning",
    "ProviderConfig",
    "RemoteJWKSource",
    "SourceHealth",
    "StaticKeySource",
    "TokenCache",
    "Verifier",
    "resolve",
]
