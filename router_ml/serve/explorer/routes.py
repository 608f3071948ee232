"""The explorer's routes: /ui (overview), /ui/requests (search), /ui/requests/{id} (one decision),
/ui/versions (router versions side by side), /ui/login, /ui/static/*.

Who may look: with tokens, a token with the `read` or `admin` scope, presented as a bearer
header or through the login form (an HttpOnly, SameSite=Strict cookie scoped to /ui). Without
tokens the pages are open, and `router-ml serve` turns them on only when it listens on
loopback (router_ml.serve.cli). The pages read the audit database read-only, in FastAPI's
thread pool, one connection per page.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from router_ml.errors import AuditError
from router_ml.serve.auth import TokenStore
from router_ml.serve.explorer import charts, queries
from router_ml.serve.metrics import Metrics

HERE = Path(__file__).parent
COOKIE = "router_ml_ui_token"
UI_SCOPES = ("read", "admin")
STATIC = {"explorer.css": "text/css"}


def _environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(count=format_count, share=format_share, usd=format_usd, prob=format_prob,
                       when=format_time, ms=format_ms)
    return env


def format_count(n) -> str:
    return "–" if n is None else f"{int(n):,}"


def format_share(x) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def format_usd(x) -> str:
    if x is None:
        return "–"
    return f"${x:,.4f}" if abs(x) < 100 else f"${x:,.2f}"


def format_prob(x) -> str:
    return "–" if x is None else f"{x:.3f}"


def format_ms(x) -> str:
    return "–" if x is None else f"{x:,.1f} ms"


def format_time(ts) -> str:
    return "–" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


class Explorer:
    """The pages over `service`'s audit database (`service.audit.path`) and its router (prices, explain)."""

    def __init__(self, service, tokens: TokenStore, metrics: Metrics) -> None:
        self.service = service
        self.tokens = tokens
        self.metrics = metrics
        self._env = None

    def render(self, name: str, status: int = 200, **context) -> HTMLResponse:
        if self._env is None:
            self._env = _environment()
        page = self._env.get_template(name).render(token_login=self.tokens.enabled, **context)
        return HTMLResponse(page, status_code=status, headers={"cache-control": "no-store"})

    def refused(self, request: Request) -> Response | None:
        """None when `request` may see the pages; else the login page's redirect or a 403."""
        if not self.tokens.enabled:
            return None
        token = self.tokens.check(request.headers.get("authorization"))
        if token is None and request.cookies.get(COOKIE):
            token = self.tokens.check(f"Bearer {request.cookies[COOKIE]}")
        if token is None:
            self.metrics.auth_failures.labels("missing_or_unknown").inc()
            return RedirectResponse("/ui/login?" + urlencode({"next": request.url.path}), status_code=303)
        if not set(UI_SCOPES) & token.scopes:
            self.metrics.auth_failures.labels("scope").inc()
            return self.render("message.html", 403, title="Not allowed",
                               message=f"the token {token.name!r} lacks the read (or admin) scope")
        return None

    def database(self):
        if self.service.audit is None:
            raise AuditError("this service keeps no audit log (started with --no-audit): nothing to explore")
        self.service.audit.flush(timeout=2)  # show what was just routed
        return queries.connect(self.service.audit.path)

    @property
    def cost_model(self):
        return self.service.router.cost_model


def explorer_routes(service, tokens: TokenStore, metrics: Metrics) -> APIRouter:
    ui = Explorer(service, tokens, metrics)
    routes = APIRouter(include_in_schema=False)

    def guarded(page):
        def run(request: Request, **kwargs):
            refused = ui.refused(request)
            if refused is not None:
                return refused
            try:
                db = ui.database()
            except AuditError as exc:
                return ui.render("message.html", 404, title="No audit log", message=str(exc))
            try:
                return page(request, db, **kwargs)
            except AuditError as exc:
                return ui.render("message.html", 400, title="Bad request", message=str(exc))
            finally:
                db.close()
        return run

    @routes.get("/ui/static/{name}")
    def static(name: str):
        if name not in STATIC:
            return Response(status_code=404)
        return FileResponse(HERE / "static" / name, media_type=STATIC[name],
                            headers={"cache-control": "max-age=3600"})

    @routes.get("/ui/login")
    def login_page(next: str = "/ui"):
        return ui.render("login.html", next=_local(next), error=None)

    @routes.post("/ui/login")
    async def login(request: Request):
        # The form by hand (application/x-www-form-urlencoded): no multipart parser needed for two fields.
        form = parse_qs((await request.body())[:8192].decode("utf-8", "replace"))
        token, next = form.get("token", [""])[0], form.get("next", ["/ui"])[0]
        found = tokens.check(f"Bearer {token.strip()}") if tokens.enabled else None
        if tokens.enabled and (found is None or not set(UI_SCOPES) & found.scopes):
            metrics.auth_failures.labels("missing_or_unknown" if found is None else "scope").inc()
            return ui.render("login.html", 401, next=_local(next),
                             error="unknown token" if found is None else f"the token {found.name!r} lacks the read scope")
        response = RedirectResponse(_local(next), status_code=303)
        if tokens.enabled:
            response.set_cookie(COOKIE, token.strip(), httponly=True, samesite="strict", path="/ui")
        return response

    @routes.get("/ui")
    def overview(request: Request, window: str = queries.DEFAULT_WINDOW):
        def page(request, db):
            span = queries.window_of(db, window)
            if span is None:
                return ui.render("overview.html", window=window, windows=list(queries.WINDOWS), data=None,
                                 path=str(service.audit.path))
            grouped = queries.cells(db, span, ui.cost_model)  # one pass for the overview and the versions
            data = queries.overview(db, span, ui.cost_model, grouped=grouped)
            colour = charts.colours([m["model"] for m in data["models"]])
            figures = {
                "timeline": charts.stacked_timeline(data["timeline"], colour),
                "shares": charts.bars([(m["model"], m["share"], format_share(m["share"])) for m in data["models"]],
                                      colour),
            }
            cost = data["cost"]
            if cost.get("always"):
                figures["cost"] = charts.bars(
                    [("served", cost["served"], format_usd(cost["served"]))]
                    + [(f"always {m}", v, format_usd(v)) for m, v in sorted(cost["always"].items(),
                                                                              key=lambda kv: kv[1])])
            versions = queries.versions(db, span, ui.cost_model, grouped=grouped)
            return ui.render("overview.html", window=window, windows=list(queries.WINDOWS), data=data,
                             colour=colour, figures=figures, versions=versions, path=str(service.audit.path),
                             serving=service.router.version)
        return guarded(page)(request)

    @routes.get("/ui/versions")
    def versions(request: Request, window: str = "all"):
        def page(request, db):
            span = queries.window_of(db, window)
            rows = [] if span is None else queries.versions(db, span, ui.cost_model)
            return ui.render("versions.html", window=window, windows=list(queries.WINDOWS), versions=rows,
                             serving=service.router.version)
        return guarded(page)(request)

    @routes.get("/ui/requests")
    def requests(request: Request, q: str = "", model: str = "", version: str = "", outcome: str = "any",
                 before: float | None = None, limit: int = queries.PAGE_ROWS):
        def page(request, db):
            search = queries.Search(q.strip(), model, version, outcome, before, limit)
            rows = queries.decisions(db, search)
            for r in rows:
                r["path"] = _path(r)
            older = None
            if len(rows) == search.limit:
                older = "/ui/requests?" + urlencode({k: v for k, v in (("q", q), ("model", model),
                                                     ("version", version), ("outcome", outcome),
                                                     ("before", repr(rows[-1]["ts"]))) if v})
            return ui.render("requests.html", rows=rows, search=search, models=queries.model_names(db),
                             versions=queries.version_names(db), outcomes=queries.OUTCOME_FILTERS, older=older)
        return guarded(page)(request)

    @routes.get("/ui/requests/{request_id}")
    def one(request: Request, request_id: str):
        def page(request, db):
            row = queries.request(db, request_id)
            if row is None:
                return ui.render("message.html", 404, title="Unknown request",
                                 message=f"no decision with request id {request_id!r} in the audit log")
            return ui.render("request.html", r=_detail(row, service.router))
        return guarded(page)(request)

    return routes


def _local(path: str) -> str:
    """Only a path of this explorer (no open redirect)."""
    return path if path.startswith("/ui") and "//" not in path and "\\" not in path else "/ui"


def _path(row: dict) -> str:
    """The cascade path of a decision: the models its steps went through and how each ended."""
    steps = json.loads(row["steps"]) if row.get("steps") else []
    return " → ".join(f"{s.get('model')} ({s.get('outcome')})" for s in steps)


def _detail(row: dict, router) -> dict:
    """A decision for its page: every model's estimate and cost, the steps, outcomes, nearest prompts."""
    scores = json.loads(row["scores"]) if row["scores"] else {}
    propensities = json.loads(row["propensities"]) if row.get("propensities") else {}
    cost_model = router.cost_model
    estimated = {}
    if row["prompt_chars"] is not None:
        costs = cost_model.estimate(row["prompt_chars"])[0]
        estimated = {m: float(c) for m, c in zip(cost_model.models, costs)}
    models = list(dict.fromkeys([*scores, *estimated, *propensities]))
    row["estimates"] = [{"model": m, "p_success": scores.get(m), "cost": estimated.get(m),
                         "propensity": propensities.get(m), "served": m == row["model"],
                         "planned": m == row.get("planned_model")} for m in models]
    row["steps"] = json.loads(row["steps"]) if row.get("steps") else []
    row["metadata"] = json.loads(row["metadata"]) if row.get("metadata") else {}
    row["shadow"] = json.loads(row["shadow"]) if row.get("shadow") else None
    row["served_outcome"] = next((o for o in row["outcomes"] if o["model"] == row["model"]), None)
    row["neighbours"], row["neighbours_note"] = [], None
    if row.get("prompt") is None:
        row["neighbours_note"] = ("the audit log keeps a digest of this prompt, not its text (prompt_storage=hash): "
                                  "its nearest training prompts cannot be looked up")
    elif router.neighbours is None:
        row["neighbours_note"] = f"router {router.version} carries no training prompts to compare with"
    else:
        explanation = router.explain(row["prompt"], row["quality_target"])
        row["neighbours"] = explanation.neighbours
        if router.version != row["router_version"]:
            row["neighbours_note"] = (f"from router {router.version}, serving now; this request was decided by "
                                      f"{row['router_version']}")
    row["novelty_pct"] = None if row.get("novelty") is None or not math.isfinite(row["novelty"]) else row["novelty"]
    return row
