"""What is wrong with a token as a person pasted it, in words.

A strict parser answers "header is not base64url" for ``Bearer eyJ...`` or a token broken
across lines; true, but it does not say what to do. :func:`diagnose_token_text` looks at the
text the way a person would and names the slip. The CLI (``jwkit token decode``/``verify``)
and the console's token inspector show it when a token does not parse; it is never used to
repair a token (a verifier takes exactly the token it was given).
"""

from __future__ import annotations

import re

__all__ = ["diagnose_token_text"]

_BASE64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_PREFIX = re.compile(r"^\s*(?:authorization\s*:\s*)?(bearer|dpop|jwt|token)\s+\S", re.IGNORECASE)


def diagnose_token_text(text: str) -> str | None:
    """The slip that makes ``text`` not a compact JWT, as advice; ``None`` if none is seen.

    RFC 7519 §3 / RFC 7515 §7.1: a JWT is three base64url parts joined by dots, with no
    whitespace, no quotes and no scheme in front (``Bearer`` belongs to the HTTP header,
    RFC 6750 §2.1)."""
    stripped = text.strip()
    if not stripped:
        return "the token is empty: paste the whole token"
    prefix = _PREFIX.match(stripped)
    if prefix:
        word = prefix.group(1)
        return f"remove the '{word} ' prefix: paste only the token itself (eyJ...)"
    if len(stripped) >= 2 and stripped[0] == stripped[-1] and stripped[0] in "\"'`":
        return "remove the quotes around the token"
    if stripped.startswith(("{", "[")):
        return "this is JSON, not a token: a JWT looks like xxxxx.yyyyy.zzzzz"
    if stripped.startswith("-----BEGIN"):
        return "this is a PEM key or certificate, not a token"
    if "\n" in stripped or "\r" in stripped:
        return "the token contains a line break: paste it as one line, without breaks"
    if any(c.isspace() for c in stripped):
        return "the token contains spaces: paste it as one piece, without spaces"
    parts = stripped.split(".")
    if len(parts) == 5:
        return "this is an encrypted token (JWE, five parts): jwkit checks signed tokens only"
    if len(parts) != 3:
        return (
            f"a JWT has three segments separated by dots; this has {len(parts)}: "
            "part of it may be missing"
        )
    if not all(_BASE64URL.match(p) for p in parts):
        bad = sorted({c for p in parts for c in p if not _BASE64URL.match(c)})
        shown = " ".join(repr(c) for c in bad[:5])
        return (
            f"the token holds characters a JWT never contains ({shown}): it was changed "
            "on the way (URL-encoded, escaped, or base64 instead of base64url)"
        )
    if not parts[0].startswith("e"):  # base64url of "{" starts with "e"
        return "the first part is not a JSON header (a JWT starts with ey): part is missing"
    return None
