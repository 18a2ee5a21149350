"""Build tokens by hand, the way an attacker would (no jwkit signing logic involved)."""

from __future__ import annotations

import json
from typing import Any

from jwkit.jose.b64 import b64url_encode


def segment(obj: Any) -> str:
    raw = obj if isinstance(obj, bytes) else json.dumps(obj, separators=(",", ":")).encode()
    return b64url_encode(raw)


def unsigned(header: Any, payload: Any) -> str:
    return segment(header) + "." + segment(payload)


def token(header: Any, payload: Any, signature: bytes = b"") -> str:
    return unsigned(header, payload) + "." + b64url_encode(signature)
