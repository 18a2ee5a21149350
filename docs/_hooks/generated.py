"""MkDocs hook: pages made at build time from the sources they describe.

* ``security.md``: the repository's ``SECURITY.md`` (one text, two places), its links to
  ``docs/`` made relative to the site;
* ``reference/openapi.json``: the admin API's OpenAPI document, taken from the app that
  ``jwkit serve`` runs (built on a throwaway SQLite home, never started);
* ``reference/admin-api.md``: that document rendered as a page, so the site needs no script
  from elsewhere to show it;
* ``img/rotation-timeline.svg``: the keys timeline the console draws, for a project that the
  scheduler rotated twice (drawn by the console's own template and stylesheet, on a throwaway
  SQLite home with a clock moved by hand).
"""

from __future__ import annotations

import json
import re
import secrets
import tempfile
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]


def on_files(files: Files, config: MkDocsConfig) -> Files:
    security = (ROOT / "SECURITY.md").read_text(encoding="utf-8")
    security = re.sub(r"\]\(docs/", "](", security)
    files.append(File.generated(config, "security.md", content=security))
    document = openapi_document()
    files.append(
        File.generated(
            config, "reference/openapi.json", content=json.dumps(document, indent=2) + "\n"
        )
    )
    files.append(File.generated(config, "reference/admin-api.md", content=render(document)))
    files.append(File.generated(config, "img/rotation-timeline.svg", content=rotation_timeline()))
    return files


#: The picture's clock: 2026-11-02 09:00 UTC, then days and hours from there.
TIMELINE_START = 1_793_610_000
DAY, HOUR = 86_400, 3_600
#: What happens in the picture (seconds after the start): a backend mints a day-long token an
#: hour before each rotation is due, and the scheduler runs.
TIMELINE_STEPS = (
    (7 * DAY - HOUR, "mint"),
    (7 * DAY, "scheduler"),  # rotates: the first key retires
    (8 * DAY + HOUR, "scheduler"),  # its last token has expired: revoked
    (14 * DAY - HOUR, "mint"),
    (14 * DAY, "scheduler"),  # rotates again
)
TIMELINE_NOW = 14 * DAY + 8 * HOUR


def rotation_timeline() -> str:
    """The console's keys timeline (``keys.html``'s ``<svg id="timeline">``, styled by
    ``console.css``) as a standalone SVG: a project created with ``rotation_days`` 7, whose
    history is :data:`TIMELINE_STEPS`, seen at :data:`TIMELINE_NOW`."""
    import asyncio

    import httpx
    import jinja2

    from jwkit.service.domain import keys
    from jwkit.service.http.app import create_app
    from jwkit.service.http.console.timeline import build_timeline
    from jwkit.service.runtime import Service
    from jwkit.service.settings import Settings

    now = [TIMELINE_START]
    token = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory(prefix="jwkit-docs-") as home:
        settings = Settings(
            home=Path(home),
            public_url="https://keys.example.com",
            admin_token=token,
            admin_password=secrets.token_urlsafe(16),
            scheduler_interval=0,
        )
        service = Service.open(settings, clock=lambda: now[0])
        loop = asyncio.new_event_loop()
        try:
            app = create_app(settings, service=service, background=False)
            api = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="https://keys.example.com/api/v1",
                headers={"Authorization": f"Bearer {token}"},
            )
            created = loop.run_until_complete(
                api.post(
                    "/projects",
                    json={"name": "billing", "rotation_days": 7, "token_ttl": DAY},
                )
            )
            created.raise_for_status()
            project_id = created.json()["id"]
            for at, step in TIMELINE_STEPS:
                now[0] = TIMELINE_START + at
                if step == "mint":
                    minted = loop.run_until_complete(
                        api.post(f"/projects/{project_id}/tokens", json={"sub": "alice"})
                    )
                    minted.raise_for_status()
                    continue
                with service.write() as session:
                    keys.run_due_transitions(
                        session, project_id, service.vault, now=now[0],
                        clock_skew=settings.clock_skew,
                    )  # fmt: skip
            now[0] = TIMELINE_START + TIMELINE_NOW
            listed = loop.run_until_complete(api.get(f"/projects/{project_id}/keys"))
            listed.raise_for_status()
            loop.run_until_complete(api.aclose())
            timeline = build_timeline(listed.json()["keys"], now[0])
        finally:
            loop.close()
            service.close()
    console = ROOT / "src" / "jwkit" / "service" / "http" / "console"
    template = (console / "templates" / "keys.html").read_text(encoding="utf-8")
    found = re.search(r'<svg id="timeline".*?</svg>', template, re.S)
    assert found is not None, 'keys.html draws no <svg id="timeline">'
    svg = jinja2.Environment(autoescape=True).from_string(found.group(0)).render(timeline=timeline)
    css = (console / "static" / "console.css").read_text(encoding="utf-8")
    root = re.search(r":root\s*\{.*?\}", css, re.S)
    rules = re.findall(r"^(?:#timeline [^{]*|\.bar-[a-z]+ )\{[^}]*\}", css, re.M)
    assert root is not None and len(rules) >= 9, "console.css lost its timeline rules"
    style = "\n".join([root.group(0).replace(":root", "svg"), *rules])
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{timeline.width}" '
        f'height="{timeline.height}" font-family="system-ui, sans-serif" '
    )
    svg = svg.replace('<svg id="timeline" ', head + 'id="timeline" ', 1)
    svg = svg.replace('width="100%" ', "", 1)
    svg = svg.replace("<desc ", f"<style>\n{style}\n</style>\n<desc ", 1)
    return svg + "\n"


def openapi_document() -> dict[str, Any]:
    """The admin API's OpenAPI document, as ``GET /api/v1/openapi.json`` serves it."""
    from jwkit.service.http.app import create_app
    from jwkit.service.runtime import Service
    from jwkit.service.settings import Settings

    with tempfile.TemporaryDirectory(prefix="jwkit-docs-") as home:
        settings = Settings(
            home=Path(home),
            public_url="https://keys.example.com",
            # Throwaway credentials of a service that never answers a request.
            admin_token=secrets.token_urlsafe(32),
            admin_password=secrets.token_urlsafe(16),
            scheduler_interval=0,
        )
        service = Service.open(settings)
        try:
            app = create_app(settings, service=service, background=False)
            document: dict[str, Any] = app.openapi()
        finally:
            service.close()
    return document


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _anchor(name: str) -> str:
    return "schema-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _type(schema: dict[str, Any]) -> str:
    """A short, linked spelling of a JSON schema's type."""
    if "$ref" in schema:
        name = _ref_name(schema["$ref"])
        return f"[`{name}`](#{_anchor(name)})"
    for combinator in ("anyOf", "oneOf", "allOf"):
        if combinator in schema:
            return " or ".join(_type(s) for s in schema[combinator])
    kind = schema.get("type")
    if kind == "array":
        return f"array of {_type(schema.get('items', {}))}"
    if "enum" in schema:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if kind == "object" and "additionalProperties" in schema:
        extra = schema["additionalProperties"]
        return "object" if extra is True else f"object of {_type(extra)}"
    return f"`{kind}`" if kind else "any"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render(document: dict[str, Any]) -> str:
    """The admin part (``/api/...``) of an OpenAPI document as Markdown."""
    out = [
        "# Admin HTTP API",
        "",
        f"{document['info']['title']}, API version {document['info']['version']}. Generated at",
        "build time from the app `jwkit serve` runs; the machine-readable document is",
        "[openapi.json](openapi.json) (the service also serves it at `/api/v1/openapi.json`",
        "and a browsable page at `/api/docs`, as the `api_docs` setting allows: see the",
        "[operator guide](../service.md#admin-api)).",
        "",
        "Every route needs the admin token (`Authorization: Bearer <token>`) or a console",
        "session with its CSRF header; a refusal is JSON with a stable `error` code.",
        "",
    ]
    for path, operations in document["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method, op in operations.items():
            out += [f"## `{method.upper()} {path}`", ""]
            if op.get("summary"):
                out += [f"**{op['summary']}**", ""]
            if op.get("description"):
                out += [op["description"].strip(), ""]
            params = op.get("parameters", [])
            if params:
                out += [
                    "| parameter | in | type | required | description |",
                    "|---|---|---|---|---|",
                ]
                out += [
                    f"| `{p['name']}` | {p['in']} | {_type(p.get('schema', {}))} | "
                    f"{'yes' if p.get('required') else 'no'} | {_cell(p.get('description', ''))} |"
                    for p in params
                ]
                out.append("")
            body = op.get("requestBody", {}).get("content", {})
            for media, content in body.items():
                out += [f"Request body (`{media}`): {_type(content.get('schema', {}))}", ""]
            out += ["| status | meaning | body |", "|---|---|---|"]
            for status, response in op.get("responses", {}).items():
                bodies = [
                    _type(c.get("schema", {}))
                    for c in response.get("content", {}).values()
                    if c.get("schema")
                ]
                out.append(
                    f"| {status} | {_cell(response.get('description', ''))} | "
                    f"{', '.join(bodies) or '—'} |"
                )
            out.append("")
    schemas = document.get("components", {}).get("schemas", {})
    if schemas:
        out += ["## Schemas", ""]
    for name, schema in schemas.items():
        out += [f"### `{name}` {{ #{_anchor(name)} }}", ""]
        if schema.get("description"):
            out += [_cell(schema["description"]), ""]
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        if props:
            out += ["| field | type | required | description |", "|---|---|---|---|"]
            out += [
                f"| `{field}` | {_type(prop)} | {'yes' if field in required else 'no'} | "
                f"{_cell(prop.get('description', ''))} |"
                for field, prop in props.items()
            ]
            out.append("")
        elif "enum" in schema or "type" in schema:
            out += [f"Type: {_type(schema)}", ""]
    return "\n".join(out) + "\n"
