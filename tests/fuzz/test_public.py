"""Hypothesis over the public endpoints of a real ``jwkit serve`` (not in the OpenAPI
document, which describes the admin API): the token endpoint (RFC 6749 §4.4, §5) and the
JWKS and discovery documents, through an HTTP client. ``test_http.py`` covers the bytes.

Every answer is checked against what the RFCs promise: a token answer is JSON with
``access_token``, ``token_type: Bearer``, an integer ``expires_in`` and ``no-store``, and the
token verifies against the live JWKS; a refusal is 400/401 JSON with an RFC 6749 §5.2 ``error``
code (401 with a ``WWW-Authenticate`` challenge); documents are JSON with an ETag, 304 has no
body. Never a 5xx.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jwkit import JWKSet, Verifier

from .http import LiveService, parser_refused

EXAMPLES = int(os.environ.get("JWKIT_PUBLIC_FUZZ_EXAMPLES", "120"))
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
OAUTH_ERRORS = {
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    service = LiveService.start(Path(tmp_path_factory.mktemp("fuzz-public")))
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
def http(live: LiveService) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.server.url, timeout=10) as client:
        yield client


def _text(max_size: int = 30) -> st.SearchStrategy[str]:
    return st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=max_size)


@pytest.mark.timeout(600)
def test_token_endpoint_answers_per_rfc_6749(live: LiveService, http: httpx.Client) -> None:
    verifier = Verifier.from_jwks_url(
        f"{live.server.url}/p/{live.project}/.well-known/jwks.json",
        issuer=f"{live.server.url}/p/{live.project}",
        algorithms=["ES256"],
        allow_insecure_http=True,
        audience=None,
    )
    good = (live.client_id, live.client_secret)
    ids = st.sampled_from([live.client_id, "nope", ""]) | _text()
    secrets = st.sampled_from([live.client_secret, "wrong"]) | _text()
    basic = st.one_of(
        st.just(good),
        st.tuples(ids, secrets),
    ).map(lambda pair: "Basic " + base64.b64encode(f"{pair[0]}:{pair[1]}".encode()).decode())
    authorization = st.none() | basic | st.sampled_from(["Basic !!", "Basic", "Bearer x"]) | _text()
    fields = st.dictionaries(
        st.sampled_from(["grant_type", "scope", "client_id", "client_secret", "audience", "x"])
        | _text(8),
        st.sampled_from(["client_credentials", "read", "write", "read read", live.client_id])
        | _text(),
        max_size=4,
    )
    content_types = st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "application/x-www-form-urlencoded; charset=utf-8",
            "application/json",
            "text/plain",
            "",
        ]
    )
    projects = st.sampled_from([live.project, live.project, live.hmac_project, "nope"])
    seen = {"ok": 0, "refused": 0}

    @FUZZ
    @given(
        project=projects,
        auth=authorization,
        form=fields,
        content_type=content_types,
        raw=st.none() | st.binary(max_size=80),
    )
    def run(
        project: str, auth: str | None, form: dict[str, str], content_type: str, raw: bytes | None
    ) -> None:
        headers = {"content-type": content_type.encode()}
        if auth is not None:
            headers["authorization"] = auth.encode()
        body = raw if raw is not None else httpx.QueryParams(form).__str__().encode()
        try:
            answer = http.post(f"/p/{project}/oauth2/token", content=body, headers=headers)
        except httpx.LocalProtocolError:
            return  # httpx refuses to send that header value: nothing reached the server
        _check_token_answer(answer, project == "nope")
        if answer.status_code == 200:
            seen["ok"] += 1
            if project == live.project:
                claims = verifier.verify(answer.json()["access_token"])
                assert claims["sub"] == live.client_id or claims.get("client_id") == live.client_id
        else:
            seen["refused"] += 1

    run()
    # The strategy reaches both outcomes (a fuzzer that only ever saw refusals proves little).
    good_form = {"grant_type": "client_credentials"}
    _check_token_answer(
        http.post(f"/p/{live.project}/oauth2/token", data=good_form, auth=good), False
    )
    assert seen["refused"] > 0


def _check_token_answer(answer: httpx.Response, unknown_project: bool) -> None:
    status = answer.status_code
    assert status < 500, answer.text
    if parser_refused(answer):
        return
    assert answer.headers["content-type"].startswith("application/json"), answer.headers
    body: dict[str, Any] = answer.json()
    if unknown_project:
        assert status == 404, answer.text
        return
    assert answer.headers.get("cache-control") == "no-store", answer.headers
    if status == 200:
        assert body["token_type"] == "Bearer"
        assert isinstance(body["access_token"], str) and body["access_token"].count(".") == 2
        assert type(body["expires_in"]) is int and body["expires_in"] > 0
        return
    assert status in (400, 401, 413), answer.text
    assert body["error"] in OAUTH_ERRORS, body
    if status == 401:
        assert answer.headers["www-authenticate"].startswith("Basic"), answer.headers


@pytest.mark.timeout(600)
def test_documents_answer_per_http_caching(live: LiveService, http: httpx.Client) -> None:
    etags: dict[str, str] = {}
    for name in ("jwks.json", "openid-configuration"):
        etags[name] = http.get(f"/p/{live.project}/.well-known/{name}").headers["etag"]

    @FUZZ
    @given(
        project=st.sampled_from([live.project, live.hmac_project, "nope", live.project.upper()]),
        name=st.sampled_from(["jwks.json", "openid-configuration"]),
        method=st.sampled_from(["GET", "GET", "HEAD", "POST", "OPTIONS"]),
        query=st.none() | st.dictionaries(_text(6), _text(), max_size=3),
        if_none_match=st.none()
        | st.sampled_from(["*", '"x"', "W/x", ""])
        | _text()
        | st.just("etag"),
        accept=st.none() | st.sampled_from(["application/json", "text/html", "*/*", ""]),
    )
    def run(
        project: str,
        name: str,
        method: str,
        query: dict[str, str] | None,
        if_none_match: str | None,
        accept: str | None,
    ) -> None:
        headers: dict[str, bytes] = {}
        if if_none_match is not None:
            value = etags[name] if if_none_match == "etag" else if_none_match
            headers["if-none-match"] = value.encode()
        if accept is not None:
            headers["accept"] = accept.encode()
        try:
            answer = http.request(
                method, f"/p/{project}/.well-known/{name}", params=query, headers=headers
            )
        except httpx.LocalProtocolError:
            return
        status = answer.status_code
        if parser_refused(answer):
            return  # (see _check_token_answer)
        assert status in (200, 304, 404, 405), (status, answer.text)
        if status == 304:
            assert answer.content == b"" and answer.headers["etag"]
        elif status == 200:
            assert answer.headers["etag"] and "max-age=" in answer.headers["cache-control"]
            if method == "HEAD":
                assert answer.content == b""
            elif name == "jwks.json":
                JWKSet.from_dict(answer.json())
            else:
                assert answer.json()["issuer"].endswith(f"/p/{project}")
        elif method != "HEAD":
            assert answer.json()["error"], answer.text

    run()
