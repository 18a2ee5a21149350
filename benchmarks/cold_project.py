"""Scale (issue 18): the least a request for one of 100,000 projects pays over a request for
a project just served, in process: the memory it has to reach.

A replica serving requests spread over 100,000 projects reaches a different project's
objects on every request, each last touched about a second ago by a request that has since
streamed some hundred megabytes of other projects through the caches (the 32 MiB L3 of this
machine holds about a fifth of one pass). This measures two pieces of the public endpoints'
work with the service's own objects, for one hot project and spread over ``--projects``:

* **document**: a discovery document or a JWKS looked up by the project id from the request
  path (a fresh string, as the wire path decodes it) in an index of every project's
  :class:`~jwkit.service.published.Document` and joined into the complete answer
  (``jwkit.service.http.wire._published``), what the wire path does for each such GET;
* **signature**: an access token signed (``domain.tokens.mint``) with the project's own ES256
  key and prepared encoder, what the token endpoint does for each token.

Each pair alternates in every round (``benchmarks/_timing.py``: process CPU time, each
candidate's best round). The difference is what the server's spread rate pays on top of the
hot one whatever its code does, unless a project's objects become smaller.

    python benchmarks/cold_project.py [--projects 100000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from _timing import compare, table  # noqa: E402

from jwkit.jose.jwk import JWK  # noqa: E402
from jwkit.jose.jwt import Encoder  # noqa: E402
from jwkit.service.domain.tokens import DPOP_ALGORITHMS, mint, token_encoder  # noqa: E402
from jwkit.service.http.wire import _published  # noqa: E402
from jwkit.service.published import JSON, JWKS, Document  # noqa: E402

PUBLIC = "https://keys.example.com"
DEFAULTS = [(b"date", b"Mon, 07 Dec 2026 12:00:00 GMT"), (b"server", b"uvicorn")]
CONTROL = b"public, max-age=300, stale-while-revalidate=2, stale-if-error=2"
METHODS = ["client_secret_basic", "client_secret_post"]


def pid_of(n: int) -> str:
    return f"proj_{n:08d}{random.getrandbits(40):010x}"


def discovery(issuer: str, kids: list[str], now: int) -> Document:
    """The shape of a project's discovery document (``ServiceState._build``)."""
    return Document.render(
        {
            "issuer": issuer,
            "jwks_uri": f"{issuer}/.well-known/jwks.json",
            "token_endpoint": f"{issuer}/oauth2/token",
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": METHODS,
            "revocation_endpoint": f"{issuer}/oauth2/revoke",
            "revocation_endpoint_auth_methods_supported": METHODS,
            "introspection_endpoint": f"{issuer}/oauth2/introspect",
            "introspection_endpoint_auth_methods_supported": METHODS,
            "id_token_signing_alg_values_supported": ["ES256"],
            "dpop_signing_alg_values_supported": DPOP_ALGORITHMS,
            "response_types_supported": [],
            "jwkit_key_schedule": [
                {"kid": kids[0], "state": "active", "activates_at": now, "retires_at": None},
                {"kid": kids[1], "state": "next", "activates_at": now + 86400, "retires_at": None},
            ],
        },
        JSON,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0, help="per candidate and round")
    args = parser.parse_args(argv)
    now = int(time.time())
    t0 = time.perf_counter()
    docs: dict[str, Document] = {}
    sets: dict[str, Document] = {}
    signing: dict[str, tuple[str, Encoder]] = {}
    for n in range(args.projects):
        pid = sys.intern(pid_of(n))
        issuer = f"{PUBLIC}/p/{pid}"
        active, upcoming = JWK.generate("ES256"), JWK.generate("ES256")
        kids = [active.thumbprint(), upcoming.thumbprint()]
        public = [k.to_dict() for k in (active, upcoming)]
        sets[pid] = Document.render({"keys": public}, JWKS)
        docs[pid] = discovery(issuer, kids, now)
        signing[pid] = (issuer, token_encoder(active))
    built = time.perf_counter() - t0
    pids = list(docs)
    hot = pids[len(pids) // 2]
    # the paths made in the order they are requested, so that reading the next one is a
    # sequential read (as a path just received is in the cache), not a trip of its own
    order = [f"/p/{pid}".encode() for pid in random.sample(pids, len(pids))]

    def requests(spread: bool):  # the project part of each request path, cycling
        paths = order if spread else [f"/p/{hot}".encode()] * len(order)
        while True:
            yield from paths

    def document(index: dict[str, Document], spread: bool):
        paths = requests(spread)

        def answer() -> bytes:
            doc = index.get(next(paths)[3:].decode("ascii", "replace"))
            assert doc is not None
            return _published(DEFAULTS, CONTROL, doc, True)

        return answer

    def signature(spread: bool):
        paths = requests(spread)

        def sign() -> str:
            issuer, encoder = signing[next(paths)[3:].decode("ascii", "replace")]
            token, _ = mint(encoder, issuer=issuer, audience="api", subject="cli_x",
                            ttl=300, now=now, client_id="cli_x", jti="j" * 22)  # fmt: skip
            return token

        return sign

    rows = []
    for what, hot_fn, spread_fn in (
        ("discovery answer", document(docs, False), document(docs, True)),
        ("JWKS answer", document(sets, False), document(sets, True)),
        ("ES256 access token", signature(False), signature(True)),
    ):
        got = compare({"hot": hot_fn, "spread": spread_fn}, rounds=args.rounds,
                      seconds=args.seconds)  # fmt: skip
        h, s = got["hot"].usec, got["spread"].usec
        rows.append((what, f"{h:.2f}", f"{s:.2f}", f"+{s - h:.2f}"))
    size = len(next(iter(docs.values())))
    print(f"{args.projects:,} projects built in {built:.0f} s; a discovery Document is "
          f"{size:,} bytes, a JWKS {len(next(iter(sets.values()))):,}")  # fmt: skip
    print(table(rows, ("work per request", "one hot project (µs)", "spread (µs)",
                       "spread costs (µs)")))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
