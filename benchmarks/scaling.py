"""How the verifier's costs grow with the number of keys, and a status list with live tokens.

Run: ``make bench`` or ``.venv/bin/python benchmarks/scaling.py [--quick]``. Prints markdown
tables (``benchmarks/plots.py`` draws them as lines).

* **Keys in the JWKS**: an ES256 token signed by the last of N keys (1 to 256, the most a remote
  JWKS may list, ``jwkit.verify.fetch.MAX_KEYS``), verified by a ``Verifier`` holding the N
  public keys (token cache off), side by side with a ``Verifier`` holding that one key; and
  ``JWKSet.from_dict`` parsing the N-key document, what each JWKS refetch costs.
* **Live tokens**: the bytes of a status list (one bit per token, 1 % revoked at random,
  compressed as the service publishes it) for 10,000 to 1,000,000 tokens: what a verifier
  fetches once per ``ttl``, whatever the number of requests. Sizes, not timings.

Timings are ``_timing.compare``'s (interleaved rounds, best round each, CPU time): read the
ratios.
"""

from __future__ import annotations

import random
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _timing import compare, table

from jwkit import JWK, JWKSet, Verifier, jwt
from jwkit.jose.statuslist import INVALID, StatusList
from jwkit.verify.fetch import MAX_KEYS

ISSUER = "https://issuer.bench"
AUDIENCE = "bench-api"
KEY_COUNTS = (1, 4, 16, 64, MAX_KEYS)
TOKEN_COUNTS = (10_000, 100_000, 1_000_000)


def keys_table(rounds: int, seconds: float) -> str:
    private = [JWK.generate("ES256") for _ in range(max(KEY_COUNTS))]
    public = [k.public() for k in private]
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user", "iat": now, "exp": now + 3600}
    opts = {"issuer": ISSUER, "audience": AUDIENCE, "token_cache": False}
    verify: dict[str, Callable[[], object]] = {}
    parse: dict[str, Callable[[], object]] = {}
    for n in KEY_COUNTS:
        token = jwt.encode(claims, private[n - 1])
        verifier = Verifier.from_jwks(JWKSet(public[:n]), **opts)
        verifier.verify(token)  # every candidate accepts its token before it is timed
        verify[str(n)] = lambda v=verifier, t=token: v.verify(t)
        document = JWKSet(public[:n]).to_dict()
        parse[str(n)] = lambda d=document: JWKSet.from_dict(d)
    verified = compare(verify, rounds=rounds, seconds=seconds)
    parsed = compare(parse, rounds=rounds, seconds=seconds)
    one = verified["1"].ops_per_sec
    rows = [
        (
            name,
            f"{verified[name].ops_per_sec:,.0f}",
            f"{verified[name].usec:.1f}",
            f"{verified[name].ops_per_sec / one:.3f}",
            f"{parsed[name].usec:,.1f}",
        )
        for name in verify
    ]
    header = ("keys in the JWKS", "verify ops/s", "verify µs", "vs 1 key", "JWKS parse µs")
    return table(rows, header)


def tokens_table() -> str:
    rng = random.Random(20261206)
    rows = []
    for n in TOKEN_COUNTS:
        lst = StatusList(n, 1)
        for index in rng.sample(range(n), n // 100):
            lst[index] = INVALID
        size = len(zlib.compress(lst.to_bytes(), 9))  # as StatusList.encode compresses
        encoded = len(lst.encode()["lst"])  # base64url, inside the Status List Token
        rows.append((f"{n:,}", f"{size / 1000:.1f}", f"{encoded / 1000:.1f}"))
    header = ("live tokens", "status list compressed KB", "as base64url in the token KB")
    return table(rows, header)


def main(argv: list[str]) -> None:
    quick = "--quick" in argv
    rounds, seconds = (2, 0.1) if quick else (5, 0.3)
    print(
        "ES256, token cache off; the candidates side by side, best of "
        f"{rounds} interleaved rounds of {seconds} s each.\n"
    )
    print(keys_table(rounds, seconds))
    print(
        "\nThe key is found by its `kid` in a dictionary, so verification does not slow down "
        "with more keys; parsing a fetched JWKS grows with its size, once per refetch.\n"
    )
    print("Status lists, 1 % of the tokens revoked at random, one bit per token:\n")
    print(tokens_table())


if __name__ == "__main__":
    main(sys.argv[1:])
