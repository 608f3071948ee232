"""`router-ml serve` and `router-ml rules check`: the service's commands.

`serve` assembles the service (router_ml.serve.assembly) and runs it on uvicorn;
`rules check` validates a policy file and counts, on an outcomes log or the service's
audit log, how often each rule fired (router_ml.policy.rules.count_rule_hits).
"""

from __future__ import annotations

from pathlib import Path

import click

from router_ml.core.cli import echo_err, fail
from router_ml.serve.listen import bind_sockets, url

LEARNED_POLICY = "learned-cascade"  # router_ml.policy.file.LEARNED_NAME, without importing the policy layer for --help


class PolicySource(click.ParamType):
    """A policy file that exists, or the built-in name `learned-cascade` (as `replay --policy` takes)."""

    name = "FILE|learned-cascade"

    def convert(self, value, param, ctx):
        path = Path(value)
        if path.is_file() or (str(value) == LEARNED_POLICY and not path.exists()):
            return path
        if path.exists():
            self.fail(f"{value!r} is a directory, not a policy file", param, ctx)
        self.fail(f"file {value!r} does not exist: give a policy file (YAML) or {LEARNED_POLICY} (the router's own "
                  "learned cascades)", param, ctx)


@click.command()
@click.option("--router", "router_path", required=True, help="Router directory or models:/NAME@ALIAS URI to serve.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; beyond loopback it needs tokens (--tokens-file) or --allow-unauthenticated.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on, bound before anything else starts (in use: exit 2); 0: any free port.")
@click.option("--audit", "audit_path", default="audit.sqlite", show_default=True, type=click.Path(path_type=Path),
              help="SQLite audit database of decisions and outcomes, created with its folder if missing.")
@click.option("--no-audit", is_flag=True,
              help="Serve without an audit trail (nothing is logged; POST /v1/outcomes answers 503).")
@click.option("--prompt-storage", default="hash", show_default=True, type=click.Choice(["hash", "text"]),
              help="What the audit log keeps of a prompt: hash, a keyed digest (HMAC-SHA256 under --audit-key-file) "
                   "and the length; text, the text as well (needed to retrain from the log).")
@click.option("--exploration-rate", default=0.0, show_default=True, type=click.FloatRange(0, 1, max_open=True),
              help="Share of the router's own decisions sent to another allowed model, so that retraining and "
                   "evaluate --audit see every model; every decision logs the distribution it was drawn from "
                   "(requests a rule forces, the novelty guard holds or a cascade plans are not explored).")
@click.option("--exploration", "exploration_design", default="utility", show_default=True,
              type=click.Choice(["utility", "uniform"]),
              help="Where explored requests go: utility, mostly to models whose utility is close to the best "
                   "(softmax at temperature 0.05, 30 % spread evenly); uniform, evenly over the others.")
@click.option("--exploration-max-extra-cost", type=click.FloatRange(min=0),
              help="Cap on exploration's expected extra cost per request, as a fraction of the chosen model's "
                   "estimated cost (e.g. 0.1); cheaper models are favoured to hold it.")
@click.option("--shadow", "shadow_router", metavar="ROUTER",
              help="A router to judge in shadow (directory or models:/ URI): its choice is logged with every "
                   "decision and exploration is aimed at it where it disagrees, so evaluate --audit can judge it.")
@click.option("--shadow-focus", type=click.FloatRange(min=0, min_open=True),
              help="With --shadow: the exploration rate where the shadow agrees; the rest of the budget goes to "
                   "requests where it disagrees (the mean stays --exploration-rate).")
@click.option("--onboarding-rate", default=0.05, show_default=True, type=click.FloatRange(0, 0.25, min_open=True),
              help="Share of traffic for the --catalog's models the router was not trained on, aimed where their "
                   "prior says they pay (their catalog entry's prior); retrain with the catalog folds them in.")
@click.option("--fallback-model",
              help="Model answered when the router itself fails (default: the router's dearest model).")
@click.option("--max-batch", default=1000, show_default=True, type=click.IntRange(min=1),
              help="Most prompts in one POST /v1/route (413 above).")
@click.option("--reload-interval", default=30.0, show_default=True, type=float,
              help="Seconds between registry checks for a new version under the alias (models:/ sources; 0 = off).")
@click.option("--flush-interval", default=0.2, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Seconds between the audit writer's commits (sooner with 256 decisions queued): what a crash "
                   "can lose at most.")
@click.option("--decision-cache", default=1024, show_default=True, type=click.IntRange(min=0),
              help="Recent decisions kept by prompt and quality target: a repeated prompt routed alone skips the "
                   "embedding (0 = off).")
@click.option("--embedding-cache", default=4096, show_default=True, type=click.IntRange(min=0),
              help="Prompt embeddings kept in memory for repeated prompts (0 = off).")
@click.option("--policy", "policy_path", type=PolicySource(),
              help="Policy file (YAML): rules and cascade for every request; fallbacks for the gateway's model calls. "
                   "Or learned-cascade: the router's own learned cascades (it needs a verifier).")
@click.option("--catalog", "catalog_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The serving catalog: with each model's base_url (and api_key_env) it turns on POST "
                   "/v1/chat/completions and lists its aliases in GET /v1/models; models in it the router was not "
                   "trained on are onboarded (--onboarding-rate).")
@click.option("--tokens-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Bearer tokens and their scopes (YAML; README, Security). Default: ROUTER_ML_TOKENS, else none "
                   "(open on loopback, admin endpoints off).")
@click.option("--allow-unauthenticated", is_flag=True,
              help="Serve beyond loopback without tokens: anyone who reaches the port can route, call models "
                   "through the gateway, report outcomes and read /metrics (admin stays off).")
@click.option("--audit-key-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Secret of the audit log's keyed digests of prompts and metadata (HMAC-SHA256). Default: the "
                   "--audit path with .key appended (audit.sqlite.key), created with mode 0600 if missing; keep it "
                   "with the database (retrain needs it).")
@click.option("--audit-metadata-keys",
              help="Comma-separated request metadata keys the audit log keeps as given; the others' values go by "
                   "--audit-metadata-other. Default: every key with --prompt-storage text, none with hash.")
@click.option("--audit-metadata-other", default="hash", show_default=True, type=click.Choice(["hash", "drop"]),
              help="What the audit log keeps of other metadata keys' values: a keyed digest (still groupable) or "
                   "nothing.")
@click.option("--retain-text-days", type=click.FloatRange(min=0, min_open=True),
              help="Erase prompt text and metadata of decisions older than this many days from the audit log "
                   "(at start, then every minute; decisions and outcomes stay).")
@click.option("--max-body-bytes", default=4_000_000, show_default=True, type=click.IntRange(min=1024),
              help="Largest request body accepted (413 above), checked before parsing.")
@click.option("--request-timeout", default=30.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds a connection has to deliver a whole request (from opening, or from the previous "
                   "response); slower connections are closed and counted.")
@click.option("--keep-alive", default=5, show_default=True, type=click.IntRange(min=1),
              help="Seconds an idle keep-alive connection stays open.")
@click.option("--max-connections", default=1000, show_default=True, type=click.IntRange(min=1),
              help="Concurrent connections and requests before new requests get 503 server_busy (per worker).")
@click.option("--max-client-connections", default=64, show_default=True, type=click.IntRange(min=0),
              help="Connections one client address may hold open (per worker); a connection past it is answered 429 "
                   "too_many_connections and closed (0 = no cap; behind a proxy every client has its address).")
@click.option("--max-client-in-flight", default=32, show_default=True, type=click.IntRange(min=0),
              help="Requests one client (its address, and its token when tokens are on) may have in flight (per "
                   "worker); more get 429 too_many_requests_in_flight (0 = no cap).")
@click.option("--api-docs", is_flag=True,
              help="Serve the API's description at /docs and /openapi.json (to admin tokens when tokens are on); off "
                   "by default. The page runs no script and loads nothing from elsewhere.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Processes serving one port, each with the router loaded; one audit log for all, /metrics "
                   "adds them up.")
@click.option("--batch-wait-ms", default=2.0, show_default=True, type=click.FloatRange(min=0),
              help="Concurrent requests are embedded together: the first waits at most this long for the others "
                   "in flight (a lone request does not wait; 0: off).")
@click.option("--no-ui", is_flag=True,
              help="Turn off the decision explorer at /ui. It is on by default on loopback and, beyond it, when "
                   "tokens are set (behind the read or admin scope); never open beyond loopback without tokens.")
def serve(**options):
    """Serve a router over HTTP (FastAPI on uvicorn), with an audit trail and Prometheus metrics."""
    import signal

    # First thing: from here on SIGTERM (an orchestrator's stop) is a clean exit 0 at any moment;
    # the "loading router" line tells that the service got this far.
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    signal.signal(signal.SIGTERM, _exit_0_while_loading)
    try:
        _serve(**options)
    finally:
        for signum, handler in previous.items():  # for callers in the same process (tests)
            if handler is not None:
                signal.signal(signum, handler)


def explorer_enabled(host: str, tokens: bool, no_ui: bool) -> bool:
    """Whether `serve` turns the decision explorer on: it shows where traffic went (and prompt text
    where the audit log keeps it), so beyond loopback only behind tokens (the read or admin scope)."""
    from router_ml.serve.auth import is_loopback

    return not no_ui and (tokens or is_loopback(host))


def _exit_0_while_loading(signum, frame):
    raise SystemExit(0)  # nothing is served yet (build_service closes what it opened): leave cleanly


def _serve(router_path, host, port, audit_path, no_audit, prompt_storage, exploration_rate, exploration_design,
           exploration_max_extra_cost, shadow_router, shadow_focus, onboarding_rate, fallback_model, max_batch,
           reload_interval, flush_interval, decision_cache, embedding_cache, policy_path, catalog_path, tokens_file,
           allow_unauthenticated, audit_key_file, audit_metadata_keys, audit_metadata_other, retain_text_days,
           max_body_bytes, request_timeout, keep_alive, max_connections, max_client_connections, max_client_in_flight,
           api_docs, workers, batch_wait_ms, no_ui):
    from router_ml.serve.auth import TokenStore, is_loopback

    if not is_loopback(host) and not TokenStore.load(tokens_file).enabled and not allow_unauthenticated:
        fail(f"--host {host} would open the service beyond this machine with no tokens: configure --tokens-file "
             "(or ROUTER_ML_TOKENS), or pass --allow-unauthenticated if a proxy in front authenticates")
    # The port first: a port in use is a named error before the audit log or the router is touched.
    sockets = bind_sockets(host, port, workers=workers)
    try:
        if workers == 1:
            echo_err(f"loading router {router_path} for {url(host, sockets)} ...")
        from router_ml.serve.assembly import ServiceSettings
        from router_ml.serve.limits import Limits

        settings = ServiceSettings(
            router=router_path, audit=None if no_audit else audit_path, prompt_storage=prompt_storage,
            flush_interval=flush_interval, exploration_rate=exploration_rate, exploration_design=exploration_design,
            exploration_max_extra_cost=exploration_max_extra_cost, shadow=shadow_router, shadow_focus=shadow_focus,
            onboarding_rate=onboarding_rate, fallback_model=fallback_model,
            max_batch=max_batch, decision_cache=decision_cache, embedding_cache=embedding_cache, policy=policy_path,
            catalog=catalog_path, tokens_file=tokens_file, audit_key_file=audit_key_file,
            audit_metadata_keys=tuple(k.strip() for k in audit_metadata_keys.split(",") if k.strip())
            if audit_metadata_keys else None,
            audit_metadata_other=audit_metadata_other, retain_text_days=retain_text_days,
            limits=Limits(max_body_bytes=max_body_bytes, request_timeout_s=request_timeout, keep_alive_s=keep_alive,
                          max_connections=max_connections, max_client_connections=max_client_connections or None,
                          max_client_in_flight=max_client_in_flight or None),
            batch_wait_ms=batch_wait_ms, api_docs=api_docs,
            # The explorer shows where traffic went (and prompt text where it is kept): open only on loopback.
            ui=explorer_enabled(host, TokenStore.load(tokens_file).enabled, no_ui),
        )
        # The connection caps are the protocol's (router_ml.serve.protocol), which answers in the
        # API's JSON error shape and counts each refusal; uvicorn's own limit answers plain text.
        uvicorn_settings = dict(log_level="warning", timeout_graceful_shutdown=20, timeout_keep_alive=keep_alive,
                                server_header=False)
        if workers > 1:
            _serve_workers(settings, sockets, url(host, sockets), workers, reload_interval, uvicorn_settings)
        else:
            _serve_one(settings, sockets, url(host, sockets), reload_interval, uvicorn_settings)
    finally:
        for sock in sockets:
            sock.close()


def _serve_one(settings, sockets, address: str, reload_interval: float, uvicorn_settings: dict) -> None:
    """`serve`: one process, the service built here, uvicorn serving `sockets`."""
    import logging
    import signal

    import uvicorn

    from router_ml.serve.assembly import build_service
    from router_ml.serve.protocol import guarded_protocol

    # The service's own events (reloads, refused reloads, registry trouble) go to stderr.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("router_ml").addHandler(handler)
    logging.getLogger("router_ml").setLevel(logging.INFO)

    built = build_service(settings)
    try:
        service = built.service
        limits = settings.limits
        protocol = guarded_protocol(limits.request_timeout_s, lambda reason: service.metrics.limited.labels(reason).inc(),
                                    max_connections=limits.max_connections,
                                    max_client_connections=limits.max_client_connections)
        server = uvicorn.Server(uvicorn.Config(built.app, http=protocol, **uvicorn_settings))

        def stop(signum, frame) -> None:
            server.should_exit = True  # uvicorn stops as soon as it has started (and drains nothing)

        # A stop from here on goes through uvicorn: `stop` until it takes the signals over (it drains
        # the requests in flight), then again when it hands them back and re-raises what it caught.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, stop)
        for warning in settings.warnings:
            echo_err(f"warning: {warning}")
        if reload_interval > 0:
            service.watch_registry(reload_interval)
        access = (f"tokens: {len(built.tokens.tokens)}" if built.tokens.enabled
                  else "no tokens: open on loopback, admin endpoints off")
        docs = "API docs at /docs; " if settings.api_docs else ""
        echo_err(f"serving {service.router.version} on {address} ({docs}{access})")
        server.run(sockets=sockets)
    finally:
        built.close()  # after uvicorn has drained the requests in flight: flush the audit log
    audit = service.audit
    echo_err(f"stopped; audit log flushed ({audit.stats()['written']} decisions written)" if audit else "stopped")


def _serve_workers(settings, sockets, address: str, workers: int, reload_interval: float,
                   uvicorn_settings: dict) -> None:
    """`serve --workers N`: uvicorn's process manager runs N workers (router_ml.serve.worker), each
    building its own service, on the socket bound here."""
    import os
    import shutil
    import tempfile

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from router_ml.serve.audit import load_key
    from router_ml.serve.auth import TokenStore
    from router_ml.serve.metrics import MULTIPROC_ENV
    from router_ml.serve.worker import SETTINGS_ENV, settings_to_env

    TokenStore.load(settings.tokens_file)  # a bad tokens file stops here, not in N workers
    if settings.audit is not None:  # one key (every storage mode digests), created before the workers race
        load_key(settings.audit_key_file or f"{settings.audit}.key")
    metrics_dir = tempfile.mkdtemp(prefix="router-ml-metrics-")
    os.environ[MULTIPROC_ENV] = metrics_dir
    os.environ[SETTINGS_ENV] = settings_to_env(settings, reload_interval)
    echo_err(f"serving {settings.router} on {address} with {workers} workers"
             + (" (API docs at /docs)" if settings.api_docs else ""))
    config = uvicorn.Config("router_ml.serve.worker:create_app", factory=True, workers=workers,
                            http="router_ml.serve.worker:WorkerProtocol", **uvicorn_settings)
    try:  # uvicorn's supervisor forwards SIGTERM/SIGINT to the workers and waits for them
        Multiprocess(config, sockets=sockets).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    echo_err("stopped; every worker flushed its audit log")


@click.group()
def rules():
    """Policy files: check rules against a log."""


@rules.command("check")
@click.option("--policy", "policy_path", required=True, type=click.Path(path_type=Path), help="The policy file.")
@click.option("--router", "router_path", help="Router whose models the rules may name (or --catalog).")
@click.option("--catalog", type=click.Path(path_type=Path), help="Catalog whose models the rules may name.")
@click.option("--outcomes", type=click.Path(path_type=Path),
              help="An outcomes log: rules are applied to each prompt (metadata: task).")
@click.option("--audit", "audit_path", type=click.Path(path_type=Path),
              help="An audit database: counts the rules recorded as fired.")
def rules_check(policy_path, router_path, catalog, outcomes, audit_path):
    """Validate a policy and report rules that shadow others or never fired on a log (exit 1 if any)."""
    from router_ml.policy.file import load_policy
    from router_ml.policy.rules import count_rule_hits

    if bool(router_path) == bool(catalog):
        fail("give --router or --catalog (the models the rules may name)")
    if router_path:
        from router_ml.core.router import load_router

        router = load_router(router_path)
        models, chars_per_token = router.models, router.cost_model.chars_per_token
    else:
        from router_ml.core.catalog import load_catalog

        loaded = load_catalog(catalog)
        models, chars_per_token = list(loaded.models), loaded.chars_per_token
    policy = load_policy(policy_path, models, chars_per_token)
    requests, fired = [], []
    if outcomes:
        from router_ml.core.tables import read_prompts

        frame = read_prompts(outcomes).drop_duplicates("prompt")
        tasks = frame["task"] if "task" in frame.columns else [None] * len(frame)
        requests = [(p, {"task": t} if isinstance(t, str) and t else {}) for p, t in zip(frame["prompt"], tasks)]
    if audit_path:
        from router_ml.serve.audit import read_joined

        fired = [d["rule"] for d in read_joined(audit_path)]
    hits = count_rule_hits(policy.rules, requests=requests, fired_lists=fired, chars_per_token=chars_per_token)
    problems = list(policy.warnings)
    problems += [f"{policy_path}:{r.line}: rule {r.name!r} never fired on {hits.requests} requests"
                 for r in hits.never_fired(policy.rules)]
    for rule in policy.rules:
        click.echo(f"line {rule.line:4d}  {rule.name:30s} fired {hits.counts[rule.name]:7d}  {rule.describe()}")
    for problem in problems:
        click.echo(f"warning: {problem}")
    click.echo(f"{len(policy.rules)} rules, {len(problems)} warnings")
    if problems:
        raise click.exceptions.Exit(1)


@click.group()
def audit():
    """The audit log: export it for analysis and retraining at scale."""


@audit.command("export")
@click.option("--audit", "audit_path", required=True, type=click.Path(path_type=Path), help="The audit database.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="A new folder: decisions/ and outcomes/ as Parquet, partitioned by day (UTC).")
@click.option("--since", help="Decisions from this time on: an ISO date or time (UTC unless it says), or a Unix time.")
def audit_export(audit_path, out_dir, since):
    """Export decisions and their outcomes as Parquet partitioned by day (what retrain and Spark read)."""
    from router_ml.serve.audit import export_parquet

    start = _parse_since(since) if since else None
    counts = export_parquet(audit_path, out_dir, start)
    echo_err(f"wrote {counts['decisions']:,} decisions and {counts['outcomes']:,} outcomes to {out_dir}")


def _parse_since(value: str) -> float:
    import datetime as dt

    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        fail(f"--since {value!r}: expected an ISO date or time (2026-11-01, 2026-11-01T12:00) or a Unix time")
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()
