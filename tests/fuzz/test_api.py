"""API fuzzing: schemathesis over the admin API of a real ``jwkit serve``, from its OpenAPI
document (``/api/v1/openapi.json``), every phase (examples, coverage, fuzzing, stateful) and
every check: no 5xx, every status, content type, header and body as documented, schema-valid
requests accepted, invalid ones refused, authentication never ignored.

Path parameters are drawn mostly from real ids (projects of every key family, their keys and
clients), so requests reach the handlers rather than 404. One exception is configured, and
why: a few rules span two members (``token_ttl`` at most ``max_token_ttl``, a token ``ttl`` at
most the project's maximum, an ``alg`` the project's key family can use) and JSON Schema
cannot say so; a request that breaks one is schema-valid and refused with 422, so 422 is
an expected answer to schema-valid data.

The public endpoints (JWKS, discovery, token, status lists, revocation, introspection, events)
are not in the OpenAPI document; ``test_public.py`` and ``test_revocation_public.py`` fuzz them
with hypothesis, ``test_http.py`` at the byte level.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .http import ADMIN_TOKEN, LiveService

#: Seconds of schemathesis (the whole run, every phase); ``make fuzz`` may raise it.
SECONDS = int(os.environ.get("JWKIT_API_FUZZ_SECONDS", "90"))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    service = LiveService.start(Path(tmp_path_factory.mktemp("fuzz-api")))
    try:
        yield service
    finally:
        service.stop()


def _config(live: LiveService, path: Path) -> Path:
    projects = [live.project, live.hmac_project]
    kids: list[str] = []
    clients = [live.client_id]
    with live.server.api() as api:
        for alg in ("RS256", "EdDSA"):
            projects.append(
                api.post("/api/v1/projects", json={"name": alg, "algorithm": alg}).json()["id"]
            )
        for project in projects:
            kids += [k["kid"] for k in api.get(f"/api/v1/projects/{project}/keys").json()["keys"]]
            made = api.post(
                f"/api/v1/projects/{project}/clients", json={"name": "st", "scopes": ["a"]}
            )
            clients.append(made.json()["client_id"])

    def strings(values: list[str]) -> str:
        return json.dumps(values)

    path.write_text(
        f"""
headers = {{ Authorization = "Bearer {ADMIN_TOKEN}" }}
workers = 1
max-time = {SECONDS}

[dictionaries.projects]
values = {strings(projects)}
[dictionaries.kids]
values = {strings(kids)}
[dictionaries.clients]
values = {strings(clients)}

[parameters]
"path.project_id" = {{ dictionary = "projects", probability = 0.8 }}
"path.kid" = {{ dictionary = "kids", probability = 0.8 }}
"path.client_id" = {{ dictionary = "clients", probability = 0.8 }}

[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "422"]
"""
    )
    return path


@pytest.mark.timeout(SECONDS + 240)
def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    live: LiveService, tmp_path: Path
) -> None:
    config = _config(live, tmp_path / "schemathesis.toml")
    schemathesis = Path(sys.executable).with_name("schemathesis")
    done = subprocess.run(
        [
            str(schemathesis), "--config-file", str(config), "--no-color", "run",
            f"{live.server.url}/api/v1/openapi.json", "--checks", "all",
        ],
        cwd=tmp_path, capture_output=True, text=True, timeout=SECONDS + 180, check=False,
    )  # fmt: skip
    report = done.stdout + done.stderr
    print(report[-3000:])
    assert done.returncode == 0, report[-20000:]
    assert "Test cases:" in report and "API Operations:" in report, report[-5000:]
    log = live.server.log()
    assert "Traceback" not in log, log[-5000:]


# -- what schemathesis found, held in place ----------------------------------------------------


def test_405_lists_every_method_of_the_path(live: LiveService) -> None:
    with live.server.api() as api:
        for method, path, allow in [
            ("PUT", "/api/v1/projects", "GET, POST"),
            ("TRACE", "/api/v1/projects", "GET, POST"),
            ("POST", f"/api/v1/projects/{live.project}", "DELETE, GET, PATCH"),
            ("OPTIONS", f"/api/v1/projects/{live.project}/keys", "GET, POST"),
        ]:
            answer = api.request(method, path)
            assert answer.status_code == 405, (method, path, answer.text)
            assert answer.headers["allow"] == allow
            assert answer.json()["error"] == "method_not_allowed"
        assert api.get("/api/v1/projects").status_code == 200  # the real routes still answer


def test_integral_numbers_are_integers_and_null_is_refused_where_the_schema_says(
    live: LiveService,
) -> None:
    with live.server.api() as api:
        made = api.post("/api/v1/projects", json={"name": "n", "token_ttl": 600.0})
        assert made.status_code == 201, made.text
        assert made.json()["token_ttl"] == 600
        project = made.json()["id"]
        assert api.post("/api/v1/projects", json={"name": "n", "token_ttl": 1.5}).status_code == 422
        assert (
            api.post("/api/v1/projects", json={"name": "n", "token_ttl": "600"}).status_code == 422
        )
        for name in ("name", "algorithm", "token_ttl", "max_token_ttl", "jwks_max_age"):
            refused = api.patch(f"/api/v1/projects/{project}", json={name: None})
            assert refused.status_code == 422, (name, refused.text)
        cleared = api.patch(f"/api/v1/projects/{project}", json={"audience": None})
        assert cleared.status_code == 200, cleared.text
        assert api.post("/api/v1/projects", json={"name": "\x1c"}).status_code == 422
    schema = live_openapi(live)["components"]["schemas"]["ProjectUpdate"]["properties"]
    assert "anyOf" not in schema["token_ttl"] and "anyOf" in schema["audience"]


def test_a_minted_token_never_holds_a_lone_surrogate(live: LiveService) -> None:
    with live.server.api() as api:
        # A project of its own: schemathesis may have deleted any project it was told about.
        project = api.post("/api/v1/projects", json={"name": "surrogates"}).json()["id"]
        refused = api.post(
            f"/api/v1/projects/{project}/tokens",
            content=b'{"sub": "a", "claims": {"x": "\\ud800"}}',
            headers={"content-type": "application/json"},
        )
        assert refused.status_code == 422, refused.text
        pair = api.post(
            f"/api/v1/projects/{project}/tokens",
            content=b'{"sub": "a", "claims": {"x": "\\ud83d\\ude00"}}',
            headers={"content-type": "application/json"},
        )
        assert pair.status_code == 200, pair.text


def live_openapi(live: LiveService) -> dict[str, Any]:
    with live.server.api() as api:
        document: dict[str, Any] = api.get("/api/v1/openapi.json").json()
    return document


def test_the_openapi_document_names_the_admin_token_and_every_refusal(live: LiveService) -> None:
    document = live_openapi(live)
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation["security"] == [{"HTTPBearer": []}], (method, path)
            assert {"401", "404", "422", "503"} <= set(operation["responses"]), (method, path)


def test_the_revocation_endpoints_are_in_the_document_schemathesis_runs_on(
    live: LiveService,
) -> None:
    """The admin revocation endpoints are fuzzed from the document like the rest; the body of
    a revocation says "exactly one selector" (schemathesis found it mostly refused data that
    the document called valid)."""
    document = live_openapi(live)
    paths = document["paths"]
    assert set(paths["/api/v1/projects/{project_id}/revocations"]) == {"get", "post"}
    assert set(paths["/api/v1/projects/{project_id}/tokens"]) == {"get", "post"}
    body = document["components"]["schemas"]["RevocationCreate"]
    assert [one["required"] for one in body["oneOf"]] == [["jti"], ["sub"], ["sid"], ["client_id"]]
    with live.server.api() as api:
        project = api.post("/api/v1/projects", json={"name": "one of"}).json()["id"]
        url = f"/api/v1/projects/{project}/revocations"
        assert api.post(url, json={"sub": "a", "jti": None}).status_code == 201
        for refused in ({}, {"sub": "a", "sid": "b"}, {"jti": None}):
            assert api.post(url, json=refused).status_code == 422, refused


def test_a_request_target_or_head_too_long_is_a_documented_refusal(live: LiveService) -> None:
    """Schemathesis sent ``GET /api/v1/audit/events`` with three query values of ~3 KiB each:
    the server's head limit answered 414, which the document did not list. Every operation
    now lists 414 and 431, and the answers have the document's error body."""
    document = live_openapi(live)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert {"414", "431"} <= set(operation["responses"]), (method, path)
    with live.server.api() as api:
        long_query = api.get("/api/v1/audit/events", params={"actor": "a" * 9000})
        assert long_query.status_code == 414, long_query.text
        assert long_query.json()["error"] == "uri_too_long"
        big_header = api.get("/api/v1/audit/events", headers={"x-big": "b" * 9000})
        assert big_header.status_code == 431, big_header.text
        assert big_header.json()["error"] == "header_fields_too_large"
        assert api.get("/api/v1/audit/events").status_code == 200  # the connection still works
