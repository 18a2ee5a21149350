"""What each JOSE fast path buys: the ES256 ``Verifier`` with one shortcut at a time turned
back into its plain twin, against the bare ``cryptography`` verify (the floor).

Run: ``.venv/bin/python benchmarks/fastpaths.py [--processes 3]``. Prints a markdown table:
each variant's rate as a share of the floor, and what the shortcut buys (the share with it,
less the share without it), as the median over fresh processes pinned to one CPU. The
numbers in ``docs/architecture.md``'s fast-path table come from here.

The variants switch a shortcut off the way a reader would: the verifier's header cache
emptied and not passed (``parse_object`` then is ``jws.parse`` + ``loads_object``), the JSON
scanner shortcut answering "in doubt" (``loads_object`` then always takes the checking
decoder); and ``jwt.decode`` with and without the key's header cache.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _timing import compare, table
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from jwkit import JWK, Verifier, jwt
from jwkit.jose import _json
from jwkit.jose.b64 import b64url_decode

ISSUER = "https://issuer.bench"
AUDIENCE = "bench-api"
FLOOR = "cryptography verify() (floor)"
ALL_ON = "Verifier, every shortcut on"


def measure() -> dict[str, float]:
    """One process: ops/s of the floor and of each variant, side by side."""
    key = JWK.generate("ES256")
    public = key.public()
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user", "iat": now, "exp": now + 3600}
    token = jwt.encode(claims, key)
    head, payload, sig_b64 = token.split(".")
    signing_input = f"{head}.{payload}".encode()
    sig = b64url_decode(sig_b64)
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    pub: Any = public._public_key
    ecdsa = ec.ECDSA(hashes.SHA256())

    def make() -> Verifier:
        return Verifier.from_jwk(
            public.to_dict(), token_cache=False, issuer=ISSUER, audience=AUDIENCE
        )

    on, no_headers, no_scan = make(), make(), make()
    no_headers._headers = None  # type: ignore[assignment]
    plain_scan = _json.scan_object
    uncached = JWK.from_dict(public.to_dict())
    uncached._headers = None  # type: ignore[assignment]

    def without_scan() -> object:
        _json.scan_object = lambda text: None  # type: ignore[assignment]
        try:
            return no_scan.verify(token)
        finally:
            _json.scan_object = plain_scan

    def decode(key: JWK) -> object:
        return jwt.decode(token, key, algorithms=["ES256"], issuer=ISSUER, audience=AUDIENCE)

    candidates: dict[str, Callable[[], object]] = {
        FLOOR: lambda: pub.verify(der, signing_input, ecdsa),
        ALL_ON: lambda: on.verify(token),
        # The same wrapper as the variants below, with nothing switched off: what the
        # wrapper itself costs, so that the variants are compared with this, not ALL_ON.
        "Verifier, wrapped like the variants": lambda: _wrapped(on, token),
        "header cache off": lambda: no_headers.verify(token),
        "JSON scanner shortcut off": without_scan,
        "jwt.decode": lambda: decode(public),
        "jwt.decode, header cache off": lambda: decode(uncached),
    }
    for fn in candidates.values():
        fn()
    return {name: r.ops_per_sec for name, r in compare(candidates).items()}


def _wrapped(verifier: Verifier, token: str) -> object:
    try:
        return verifier.verify(token)
    finally:
        pass


def _main() -> None:
    if "--measure" in sys.argv:
        cpu = os.environ.get("JWKIT_BENCH_CPU")
        if cpu:
            os.sched_setaffinity(0, {int(cpu)})
        print(json.dumps(measure()))
        return
    processes = 3
    if "--processes" in sys.argv:
        processes = int(sys.argv[sys.argv.index("--processes") + 1])
    cpus = sorted(os.sched_getaffinity(0))
    env = dict(os.environ, JWKIT_BENCH_CPU=str(cpus[-1]) if len(cpus) > 1 else "")
    runs = [
        json.loads(
            subprocess.run(
                [sys.executable, __file__, "--measure"],
                capture_output=True,
                text=True,
                check=True,
                env=env,
            ).stdout
        )
        for _ in range(processes)
    ]
    rows = []
    for name in runs[0]:
        share = statistics.median(r[name] / r[FLOOR] for r in runs)
        rows.append((name, f"{statistics.median(r[name] for r in runs):,.0f}", f"{share:.3f}"))
    print(f"ES256, medians over {processes} processes\n")
    print(table(rows, ("variant", "ops/s", "share of floor")))


if __name__ == "__main__":
    _main()
