"""A throwaway SoftHSM2 token for the ``pkcs11`` key backend tests (marker ``pkcs11``).

Each test session gets its own ``SOFTHSM2_CONF`` pointing at a fresh token directory, and a
token initialised there with ``softhsm2-util --init-token --free``. Without SoftHSM2 the
tests are skipped, except under CI (``CI`` set), where its absence is a failure.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

MODULE_PATHS = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)


@dataclass(frozen=True)
class SoftHSM:
    module: Path
    conf: Path
    label: str
    pin: str
    so_pin: str

    def env(self, **extra: str) -> dict[str, str]:
        """``JWKIT_*`` (and ``SOFTHSM2_CONF``) for a server using this token."""
        env = {
            "SOFTHSM2_CONF": str(self.conf),
            "JWKIT_KEY_BACKEND": "pkcs11",
            "JWKIT_PKCS11_MODULE": str(self.module),
            "JWKIT_PKCS11_TOKEN_LABEL": self.label,
            "JWKIT_PKCS11_PIN": self.pin,
        }
        env.update(extra)
        return env

    def settings(self) -> dict[str, Any]:
        """The same, as :class:`~jwkit.service.settings.Settings` keyword arguments."""
        return {
            "key_backend": "pkcs11",
            "pkcs11_module": self.module,
            "pkcs11_token_label": self.label,
            "pkcs11_pin": self.pin,
        }

    @contextmanager
    def session(self) -> Iterator[Any]:
        """A read-write session on the token from this (test) process."""
        import pkcs11

        token = pkcs11.lib(str(self.module)).get_token(token_label=self.label)
        try:
            session = token.open(user_pin=self.pin, rw=True)
        except pkcs11.exceptions.UserAlreadyLoggedIn:
            session = token.open(rw=True)
        try:
            yield session
        finally:
            session.close()

    def private_keys(self, prefix: str = "jwkit/") -> dict[str, Any]:
        """Label -> attributes of every private key on the token whose label starts so."""
        import pkcs11
        from pkcs11 import Attribute, ObjectClass

        found: dict[str, Any] = {}
        with self.session() as session:
            for obj in session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}):
                label = obj[Attribute.LABEL]
                if not label.startswith(prefix):
                    continue
                attrs = {
                    name: obj[attr]
                    for name, attr in (
                        ("token", Attribute.TOKEN),
                        ("sensitive", Attribute.SENSITIVE),
                        ("extractable", Attribute.EXTRACTABLE),
                        ("always_sensitive", Attribute.ALWAYS_SENSITIVE),
                        ("never_extractable", Attribute.NEVER_EXTRACTABLE),
                        ("local", Attribute.LOCAL),
                    )
                }
                try:
                    obj[
                        Attribute.VALUE
                        if obj.key_type != pkcs11.KeyType.RSA
                        else Attribute.PRIVATE_EXPONENT
                    ]
                except (
                    pkcs11.exceptions.AttributeSensitive,
                    pkcs11.exceptions.AttributeTypeInvalid,
                ):
                    attrs["value_readable"] = False
                else:
                    attrs["value_readable"] = True
                found[label] = attrs
        return found

    def destroy(self, label: str) -> int:
        """Delete a key behind the service's back; how many objects went."""
        from pkcs11 import Attribute

        with self.session() as session:
            objs = list(session.get_objects({Attribute.LABEL: label}))
            for obj in objs:
                obj.destroy()
        return len(objs)


def find_module() -> Path | None:
    for candidate in MODULE_PATHS:
        if Path(candidate).is_file():
            return Path(candidate)
    return None


def require() -> Path:
    """The SoftHSM2 module, or a skip (a failure under CI)."""
    module = find_module()
    if module is None or shutil.which("softhsm2-util") is None:
        message = "SoftHSM2 is not installed (apt-get install softhsm2)"
        if os.environ.get("CI"):
            pytest.fail(message + ": CI must install it")
        pytest.skip(message)
    try:
        import pkcs11  # noqa: F401
    except ImportError:
        pytest.fail("python-pkcs11 is missing: pip install 'jwkit[hsm]'")
    return module


def make_token(root: Path, label: str = "jwkit-test") -> SoftHSM:
    """A fresh token store under ``root`` with one initialised token. Sets ``SOFTHSM2_CONF``
    in this process too (the test process opens the token to look inside)."""
    module = require()
    tokens = root / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
        "slots.removable = false\n"
    )
    pin, so_pin = secrets.token_hex(8), secrets.token_hex(8)
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    command = ["softhsm2-util", "--init-token", "--free", "--label", label]
    command += ["--pin", pin, "--so-pin", so_pin]
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=60)
    os.environ["SOFTHSM2_CONF"] = str(conf)
    return SoftHSM(module, conf, label, pin, so_pin)
