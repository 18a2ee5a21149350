"""Prometheus metrics (prometheus-client): counters shared by every app in the process."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, generate_latest
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["DOCUMENTS", "ERRORS", "TOKENS", "TRANSITIONS", "WIRE", "metrics_endpoint"]

TOKENS = Counter("jwkit_tokens_issued", "Access tokens issued.", ["grant"])
DOCUMENTS = Counter(
    "jwkit_document_requests", "JWKS and discovery requests.", ["document", "status"]
)
TRANSITIONS = Counter("jwkit_key_transitions", "Key lifecycle transitions.", ["action"])
ERRORS = Counter("jwkit_errors", "Error responses by kind.", ["kind"])
WIRE = Counter(
    "jwkit_wire_responses",
    "JWKS/discovery answers written straight from the HTTP parser (also in document_requests).",
)


async def metrics_endpoint(request: Request) -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
