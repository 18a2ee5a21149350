"""Key custody without an HSM: ``local`` stays the default and unchanged, and the settings of
the ``pkcs11`` backend are refused clearly before any token is touched."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from jwkit.service.keys import KeyBackendError, open_keyring
from jwkit.service.runtime import Service
from jwkit.service.store.models import Key

from .conftest import ADMIN_PASSWORD, AUTH, FakeClock, SyncClient, make_settings


def test_local_is_the_default_and_keys_say_so(
    service: Service, client: SyncClient, project: dict[str, Any]
) -> None:
    assert service.settings.key_backend == "local"
    keys = client.get(f"/api/v1/projects/{project['id']}/keys", headers=AUTH).json()["keys"]
    assert [k["backend"] for k in keys] == ["local", "local"]
    created = client.post(
        f"/api/v1/projects/{project['id']}/keys", json={"mode": "next"}, headers=AUTH
    ).json()
    assert created["backend"] == "local"
    with sqlite3.connect(service.settings.home / "jwkit.db") as db:
        rows = db.execute(
            "SELECT backend, length(wrapped_dek) > 0, length(ciphertext) > 0, key_handle FROM keys"
        ).fetchall()
    assert set(rows) == {("local", 1, 1, None)}  # sealed in the database, as always

    form = client.get("/console/login").text
    csrf = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    r = client.post(
        "/console/login", data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": csrf}
    )
    assert r.status_code == 303, r.text
    page = client.get(f"/console/projects/{project['id']}/keys").text
    assert 'data-backend="local">in this database, sealed with AES-256-GCM' in page
    assert "· HSM" not in page


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"key_backend": "pkcs11"}, "needs JWKIT_PKCS11_MODULE"),
        (
            {"key_backend": "pkcs11", "pkcs11_module": "/nonexistent/p11.so", "pkcs11_pin": "1"},
            "PKCS#11 module not found: /nonexistent/p11.so",
        ),
        (
            {"key_backend": "pkcs11", "pkcs11_module": "/nonexistent/p11.so"},
            "needs JWKIT_PKCS11_PIN",
        ),
        (
            {
                "key_backend": "pkcs11",
                "pkcs11_module": "/nonexistent/p11.so",
                "pkcs11_pin": "1",
                "pkcs11_pin_file": "pin",
            },
            "not both",
        ),
    ],
)
def test_broken_pkcs11_settings_are_refused(
    tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(KeyBackendError, match=message.replace("#", r"\#").replace(".", r"\.")):
        open_keyring(make_settings(tmp_path, **values), b"k" * 32)


def test_a_pin_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    pin = tmp_path / "pin"
    pin.write_text("1234\n")
    pin.chmod(0o644)
    settings = make_settings(
        tmp_path, key_backend="pkcs11", pkcs11_module="/nonexistent/p11.so", pkcs11_pin_file=pin
    )
    with pytest.raises(KeyBackendError, match="must not be readable by group/others"):
        open_keyring(settings, b"k" * 32)
    pin.chmod(0o600)  # read, then the module is looked for
    with pytest.raises(KeyBackendError, match="module not found"):
        open_keyring(settings, b"k" * 32)


def test_keys_in_a_backend_that_is_not_configured_stop_the_start(
    service: Service, project: dict[str, Any], tmp_path: Path
) -> None:
    with service.write() as session:
        session.execute(update(Key).where(Key.project_id == project["id"]).values(backend="pkcs11"))
    with pytest.raises(KeyBackendError, match="'pkcs11' backend, which is not configured"):
        Service.open(service.settings, clock=FakeClock())
