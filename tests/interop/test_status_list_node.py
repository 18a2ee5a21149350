"""Token Status Lists both ways with an independent implementation:
``@sd-jwt/jwt-status-list`` (Node, zlib by pako), and Status List Tokens it builds, signed by
Node's ``jose``, verified by a jwkit ``Verifier`` over real HTTP."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest

from jwkit import JWK, TokenRevoked, TokenSuspended, Verifier
from jwkit.jose import jwt
from jwkit.jose.statuslist import StatusList
from tests.support.status_server import StatusServer

from .conftest import NodeRunner

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "status-list"


def random_statuses(bits: int, size: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    top = (1 << bits) - 1
    picked = rng.sample(range(size), size // 20)
    return sorted([i, rng.randint(1, top)] for i in picked)


def jwkit_list(bits: int, size: int, statuses: list[list[int]]) -> StatusList:
    lst = StatusList(size, bits)
    for index, value in statuses:
        lst[index] = value
    return lst


def nonzero(lst: StatusList) -> list[list[int]]:
    return [[i, lst[i]] for i in range(len(lst)) if lst[i]]


CASES = [(bits, size) for bits in (1, 2, 4, 8) for size in (8, 1000, 100_003)]


def test_lists_jwkit_encodes_decode_there(node_status_list: NodeRunner) -> None:
    ops, expected = [], []
    for n, (bits, size) in enumerate(CASES):
        statuses = random_statuses(bits, size, n)
        lst = jwkit_list(bits, size, statuses)
        ops.append({"op": "decode", "bits": bits, "lst": lst.encode()["lst"]})
        expected.append((len(lst), statuses))
    for result, (length, statuses) in zip(node_status_list(ops), expected, strict=True):
        assert result["ok"], result
        assert result["size"] == length  # the byte array, so whole bytes of entries
        assert result["statuses"] == statuses


def test_lists_it_encodes_decode_in_jwkit(node_status_list: NodeRunner) -> None:
    ops, cases = [], []
    for n, (bits, size) in enumerate(CASES):
        statuses = random_statuses(bits, size, 100 + n)
        ops.append({"op": "encode", "bits": bits, "size": size, "statuses": statuses})
        cases.append((bits, size, statuses))
    for result, (bits, size, statuses) in zip(node_status_list(ops), cases, strict=True):
        assert result["ok"], result
        decoded = StatusList.decode({"bits": bits, "lst": result["lst"]})
        assert decoded == jwkit_list(bits, size, statuses)
        assert nonzero(decoded) == statuses


def test_both_read_the_drafts_vectors_alike(node_status_list: NodeRunner) -> None:
    import json
    import re

    statuses = json.loads((VECTORS / "statuses.json").read_text("utf-8"))
    ops, ours = [], []
    for bits in ("1", "2", "4", "8"):
        text = (VECTORS / statuses[bits]["file"]).read_text("utf-8")
        encoded = json.loads(re.sub(r"\s+", "", text[text.index("{") :]))
        ops.append({"op": "decode", "bits": encoded["bits"], "lst": encoded["lst"]})
        ours.append(nonzero(StatusList.decode(encoded)))
    for result, mine in zip(node_status_list(ops), ours, strict=True):
        assert result["ok"], result
        assert result["statuses"] == mine


def _list_payload(server: StatusServer) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": server.issuer,
        "sub": server.list_url(1),
        "iat": now,
        "exp": now + 600,
        "ttl": 300,
    }


def test_tokens_it_makes_verify_in_jwkit(node_status_list: NodeRunner) -> None:
    key = JWK.generate("ES256").replace(kid="node-1")
    statuses = [[3, 1], [4, 2], [900, 1]]
    with StatusServer() as server:
        server.serve_jwks({"keys": [key.public().to_dict()]})
        (signed,) = node_status_list(
            [
                {
                    "op": "sign_token",
                    "bits": 2,
                    "size": 1024,
                    "statuses": statuses,
                    "payload": _list_payload(server),
                    "jwk": key.to_dict(private=True),
                    "alg": "ES256",
                    "kid": "node-1",
                }
            ]
        )
        assert signed["ok"], signed
        server.serve_list(signed["token"])

        def access(idx: int) -> str:
            now = int(time.time())
            claims = {
                "iss": server.issuer,
                "sub": "u",
                "iat": now,
                "exp": now + 60,
                "status": {"status_list": {"idx": idx, "uri": server.list_url(1)}},
            }
            return jwt.encode(claims, key)

        with Verifier.from_jwks_url(
            server.jwks_url, issuer=server.issuer, allow_insecure_http=True
        ) as v:
            assert v.verify(access(0))["sub"] == "u"
            assert v.verify(access(1023))["sub"] == "u"
            with pytest.raises(TokenRevoked):
                v.verify(access(3))
            with pytest.raises(TokenSuspended):
                v.verify(access(4))
            with pytest.raises(TokenRevoked):
                v.verify(access(900))


def test_tokens_jwkit_signs_decode_there(node_status_list: NodeRunner) -> None:
    key = JWK.generate("ES256").replace(kid="k1")
    statuses = random_statuses(4, 5000, 7)
    lst = jwkit_list(4, 5000, statuses)
    now = int(time.time())
    token = jwt.encode(
        {
            "sub": "https://issuer.example/statuslists/1",
            "iat": now,
            "exp": now + 60,
            "ttl": 30,
            "status_list": lst.encode(),
        },
        key,
        headers={"typ": "statuslist+jwt"},
    )
    (result,) = node_status_list([{"op": "decode_token", "token": token}])
    assert result["ok"], result
    assert result["bits"] == 4
    assert result["statuses"] == statuses
