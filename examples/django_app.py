"""A one-file Django project protected by jwkit's middleware and decorator.

    JWKIT_EXAMPLE_JWK_FILE=public_key.json JWKIT_EXAMPLE_AUDIENCE=https://api.example \
        python examples/django_app.py runserver     # 127.0.0.1:8002 (jwkit serve has 8000)
    # or, under a production WSGI/ASGI server: the module's ``application``

``/public`` is excluded in ``settings.JWKIT``; ``/me`` is a function view, ``/admin`` an async
class-based view that also needs the ``admin`` scope.
"""

from __future__ import annotations

import os
import sys

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views import View


def jwkit_settings() -> dict[str, object]:
    audience = os.environ.get("JWKIT_EXAMPLE_AUDIENCE")  # the aud your tokens carry
    if not audience:
        raise SystemExit("set JWKIT_EXAMPLE_AUDIENCE to the aud your tokens carry")
    url = os.environ.get("JWKIT_EXAMPLE_JWKS_URL")
    if url:
        local = url.startswith(("http://127.0.0.1", "http://localhost"))
        options = {"allow_insecure_http": local, "audience": audience}
        return {"JWKS_URL": url, "VERIFIER_OPTIONS": options}
    return {
        "JWK_FILE": os.environ["JWKIT_EXAMPLE_JWK_FILE"],
        "VERIFIER_OPTIONS": {"audience": audience},
    }


settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["127.0.0.1", "localhost", "testserver"],
    ROOT_URLCONF=__name__,
    SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret"),
    MIDDLEWARE=["jwkit.integrations.django.JWKitMiddleware"],  # the three lines: this one,
    JWKIT={**jwkit_settings(), "EXCLUDE_PATHS": ["/public"]},  # this one,
)

from jwkit.integrations.django import require_token  # noqa: E402


def public(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"hello": "anyone"})


def me(request: HttpRequest) -> JsonResponse:  # and request.claims in any view
    claims = request.claims
    return JsonResponse({"sub": claims.sub, "scopes": sorted(claims.scopes)})


@require_token(scopes="admin")
class Admin(View):
    async def get(self, request: HttpRequest) -> JsonResponse:
        return JsonResponse({"sub": request.claims.sub, "admin": True})


urlpatterns = [path("public", public), path("me", me), path("admin", Admin.as_view())]

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()

if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    argv = list(sys.argv)
    if argv[1:] == ["runserver"]:
        argv.append("127.0.0.1:8002")  # not 8000: that is `jwkit serve`'s (make run) port
    execute_from_command_line(argv)
