"""The API's documentation page: the OpenAPI description rendered as one HTML page on the server.

FastAPI's own pages (Swagger UI, ReDoc) load their scripts and styles from a CDN: a page served
by this service would make the operator's browser run code from a third party with the
service's origin. This page has no script at all, loads nothing from elsewhere, and says so in
its Content-Security-Policy; `/openapi.json` is the machine-readable description.
"""

from __future__ import annotations

import html
import json

# Nothing may load or run: no scripts, no frames, no fetches; only the page's own inline style.
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
METHODS = ("get", "post", "put", "patch", "delete")


def render_docs(spec: dict) -> str:
    """An HTML page listing every operation of an OpenAPI description: method, path, summary,
    description, parameters, request body and responses (schemas as JSON)."""
    info = spec.get("info") or {}
    e = lambda value: html.escape(str(value), quote=True)  # noqa: E731
    parts = [f"<h1>{e(info.get('title', 'API'))} <small>{e(info.get('version', ''))}</small></h1>",
             f"<p>{e(info.get('description', ''))}</p>",
             '<p>The machine-readable description: <a href="openapi.json">openapi.json</a>.</p>']
    for path, item in sorted((spec.get("paths") or {}).items()):
        for method in METHODS:
            op = (item or {}).get(method)
            if not op:
                continue
            parts.append(f"<h2><code>{method.upper()} {e(path)}</code></h2>")
            if op.get("summary"):
                parts.append(f"<p><b>{e(op['summary'])}</b></p>")
            if op.get("description"):
                parts.append(f"<pre class=d>{e(op['description'])}</pre>")
            params = op.get("parameters") or []
            if params:
                rows = "".join(f"<tr><td><code>{e(p.get('name'))}</code></td><td>{e(p.get('in'))}</td>"
                               f"<td>{'yes' if p.get('required') else 'no'}</td></tr>" for p in params)
                parts.append(f"<table><tr><th>parameter</th><th>in</th><th>required</th></tr>{rows}</table>")
            body = ((op.get("requestBody") or {}).get("content") or {}).get("application/json")
            if body:
                parts.append("<p>Request body (JSON):</p><pre>" + e(json.dumps(body.get("schema"), indent=2)) + "</pre>")
            responses = op.get("responses") or {}
            if responses:
                rows = "".join(f"<tr><td>{e(code)}</td><td>{e(r.get('description', ''))}</td></tr>"
                               for code, r in sorted(responses.items()))
                parts.append(f"<table><tr><th>status</th><th>meaning</th></tr>{rows}</table>")
    schemas = (spec.get("components") or {}).get("schemas") or {}
    if schemas:
        parts.append("<h2>Schemas</h2>")
        for name, schema in sorted(schemas.items()):
            parts.append(f"<h3 id='{e(name)}'>{e(name)}</h3><pre>{e(json.dumps(schema, indent=2))}</pre>")
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}pre{background:#f4f4f4;"
             "padding:.5em;overflow:auto}pre.d{background:none;white-space:pre-wrap}td,th{border:1px solid #ccc;"
             "padding:.2em .5em}table{border-collapse:collapse}")
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{e(info.get('title', 'API'))}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")
