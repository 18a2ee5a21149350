"""Envelope encryption: round trips, bindings, tampering, master key sources."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from jwkit.service.vault import (
    MasterKeyError,
    SealedKey,
    Vault,
    VaultError,
    load_master_key,
    parse_master_key,
)

KEY_A = bytes(range(32))
KEY_B = bytes(range(1, 33))


def test_round_trip_and_fresh_nonces() -> None:
    vault = Vault(KEY_A)
    one = vault.seal(b"secret", project_id="p1", kid="k1")
    two = vault.seal(b"secret", project_id="p1", kid="k1")
    assert one.ciphertext != two.ciphertext and one.wrapped_dek != two.wrapped_dek
    assert b"secret" not in one.ciphertext
    assert vault.open(one, project_id="p1", kid="k1") == b"secret"
    assert one.kek_id == vault.kek_id and "k1" not in repr(vault)


@pytest.mark.parametrize(("project_id", "kid"), [("p2", "k1"), ("p1", "k2")])
def test_binding_to_project_and_kid(project_id: str, kid: str) -> None:
    vault = Vault(KEY_A)
    sealed = vault.seal(b"secret", project_id="p1", kid="k1")
    with pytest.raises(VaultError):
        vault.open(sealed, project_id=project_id, kid=kid)


def test_wrong_master_key_and_tampering() -> None:
    sealed = Vault(KEY_A).seal(b"secret", project_id="p", kid="k")
    with pytest.raises(VaultError):
        Vault(KEY_B).open(sealed, project_id="p", kid="k")
    flipped = bytearray(sealed.ciphertext)
    flipped[-1] ^= 1
    with pytest.raises(VaultError):
        Vault(KEY_A).open(
            SealedKey(sealed.wrapped_dek, bytes(flipped), sealed.kek_id), project_id="p", kid="k"
        )
    with pytest.raises(VaultError):
        Vault(KEY_A).open(
            SealedKey(b"\x01short", sealed.ciphertext, sealed.kek_id), project_id="p", kid="k"
        )


def test_rewrap_moves_only_the_data_key() -> None:
    old, new = Vault(KEY_A), Vault(KEY_B)
    sealed = old.seal(b"secret", project_id="p", kid="k")
    moved = old.rewrap(sealed, new, project_id="p", kid="k")
    assert moved.ciphertext == sealed.ciphertext and moved.kek_id == new.kek_id
    assert new.open(moved, project_id="p", kid="k") == b"secret"
    with pytest.raises(VaultError):
        old.open(moved, project_id="p", kid="k")


def test_parse_master_key_forms() -> None:
    assert parse_master_key(KEY_A.hex()) == KEY_A
    assert parse_master_key(base64.urlsafe_b64encode(KEY_A).decode().rstrip("=")) == KEY_A
    for bad in ["", "zz" * 32, "abc", base64.urlsafe_b64encode(b"x" * 16).decode()]:
        with pytest.raises(MasterKeyError):
            parse_master_key(bad)
    with pytest.raises(MasterKeyError):
        Vault(b"short")


def test_master_key_file_created_0600_and_reused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = load_master_key(None, home)
    path = home / "master.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_master_key(None, home) == first
    assert load_master_key(KEY_A.hex(), home) == KEY_A  # the environment wins


def test_master_key_file_with_loose_permissions_is_refused(tmp_path: Path) -> None:
    load_master_key(None, tmp_path)
    os.chmod(tmp_path / "master.key", 0o644)
    with pytest.raises(MasterKeyError, match="readable"):
        load_master_key(None, tmp_path)
