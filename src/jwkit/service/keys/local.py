"""The ``local`` backend: private keys sealed in the database under the master key.

Generation uses the JOSE core (:meth:`jwkit.jose.jwk.JWK.generate`), sealing the vault
(:mod:`jwkit.service.vault`); a signer is the key opened once into process memory. Revoked
keys stay sealed in their rows, as they always have.
"""

from __future__ import annotations

from typing import Any

from jwkit.jose.jwk import JWK
from jwkit.service.keys import LOCAL, NewKey, Signer
from jwkit.service.vault import SealedKey, Vault

__all__ = ["LocalBackend"]


class LocalBackend:
    name = LOCAL

    def __init__(self, vault: Vault) -> None:
        self.vault = vault

    def generate(self, project_id: str, alg: str) -> NewKey:
        jwk = JWK.generate(alg)
        assert jwk.kid is not None
        sealed = self.vault.seal(
            jwk.to_json(private=True).encode(), project_id=project_id, kid=jwk.kid
        )
        return NewKey(
            kid=jwk.kid,
            public_jwk=None if jwk.kty == "oct" else jwk.public().to_dict(),
            backend=LOCAL,
            wrapped_dek=sealed.wrapped_dek,
            ciphertext=sealed.ciphertext,
            kek_id=sealed.kek_id,
        )

    def signer(self, key: Any) -> Signer:
        sealed = SealedKey(key.wrapped_dek, key.ciphertext, key.kek_id)
        return Signer(
            JWK.from_json(self.vault.open(sealed, project_id=key.project_id, kid=key.kid))
        )

    def destroy(self, key: Any) -> bool:
        return False  # the sealed key stays in its row (unchanged behaviour)

    def close(self) -> None:
        return None
