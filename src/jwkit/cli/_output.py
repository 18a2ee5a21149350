"""Shared CLI plumbing: JSON/human output, reading inputs, durations, exit codes."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INPUT = 3

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """``90``, ``90s``, ``15m``, ``2h``, ``1d`` -> seconds."""
    match = _DURATION.match(text)
    if not match:
        raise click.BadParameter(f"{text!r} is not a duration like 90s, 15m, 2h or 1d")
    return int(match.group(1)) * _UNITS[match.group(2)]


def read_text_arg(value: str) -> str:
    """A literal argument, or standard input when it is ``-``."""
    if value == "-":
        return sys.stdin.read().strip()
    return value.strip()


def read_file(path: str | Path) -> str:
    try:
        return Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail_input(f"cannot read {path}: {exc}")


def fail_input(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_INPUT)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def load_key_file(path: str | Path) -> Any:
    """A JWK (JSON), a JWK Set (JSON with "keys") or a PEM key from a file.

    Returns a :class:`~jwkit.JWK` or :class:`~jwkit.JWKSet`; exits with code 3 if the file
    cannot be read or holds no usable key.
    """
    from ..errors import JWKError
    from ..jose.jwk import JWK, JWKSet

    text = read_file(path)
    try:
        if text.lstrip().startswith("{"):
            data = json.loads(text)
            if isinstance(data, dict) and "keys" in data:
                return JWKSet.from_dict(data)
            return JWK.from_dict(data)
        return JWK.from_pem(text)
    except (ValueError, JWKError) as exc:
        fail_input(f"{path} holds no usable key: {exc}")


def token_error(exc: Exception, text: str) -> NoReturn:
    """``error: <code>: <message>`` on stderr and exit 1; a token that does not even parse
    gets what is wrong with it as pasted (a ``Bearer`` prefix, a line break, ...)."""
    from ..errors import JWKitError, MalformedToken
    from ..verify.diagnose import diagnose_token_text

    code = exc.code if isinstance(exc, JWKitError) else "error"
    message = str(exc)
    if isinstance(exc, MalformedToken):
        message = diagnose_token_text(text) or message
    click.echo(f"error: {code}: {message}", err=True)
    sys.exit(EXIT_FAILED)
