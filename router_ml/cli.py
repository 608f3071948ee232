"""`router-ml`: the command line. The top layer: it calls the library and the pipeline,
and nothing imports it.

Bad arguments and bad input exit with status 2 and one line on stderr that names the
problem; heavy modules are imported inside each command so `--help` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from router_ml.errors import RouterError

EXIT_BAD_INPUT = 2
EXIT_REFUSED = 1  # a valid request the data says no to (promotion of a worse version)


def _fail(message: str) -> None:
    raise click.UsageError(message)


def _parse_pairs(values: tuple[str, ...], option: str, convert=str) -> dict:
    pairs = {}
    for value in values:
        key, sep, raw = value.partition("=")
        if not sep or not key or not raw:
            _fail(f"{option}: expected KEY=VALUE, found {value!r}")
        try:
            pairs[key] = convert(raw)
        except ValueError:
            _fail(f"{option}: {value!r}: the value is not a {convert.__name__}")
    return pairs


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="router-ml")
def cli() -> None:
    """Train, evaluate and use a router that picks the cheapest LLM that will do the job."""


@cli.command("import")
@click.argument("format", type=click.Choice(["routellm", "llmrouter", "routerbench"]))
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Outcomes file to write (.csv, .jsonl or .parquet).")
@click.option("--prices", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="llmrouter: its price file (default_llm.json).")
@click.option("--tasks", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="llmrouter: query_data JSONL with task_name, joined on the question.")
@click.option("--contaminated", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="routellm: drop prompts listed in contaminated_prompts.jsonl.")
@click.option("--call-cost", multiple=True, metavar="MODEL=USD", help="routellm: a flat cost per call for a model (repeat per model); writes a cost column.")
@click.option("--catalog-out", type=click.Path(path_type=Path), help="Also write a model catalog (llmrouter: from its prices).")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
def import_cmd(format, src, out, prices, tasks, contaminated, call_cost, catalog_out, overwrite):
    """Convert a public routing data set in FORMAT at SRC to the outcomes contract."""
    from training import importers

    costs = _parse_pairs(call_cost, "--call-cost", float)
    result = importers.run_import(format, src, out, prices=prices, tasks=tasks, contaminated=contaminated,
                                  call_costs=costs, catalog_out=catalog_out, overwrite=overwrite, log=_echo_err)
    click.echo(json.dumps(result))


def _echo_err(message: str) -> None:
    click.echo(message, err=True)


@cli.command()
@click.option("--outcomes", required=True, type=click.Path(path_type=Path), help="Outcomes log (.csv, .jsonl, .parquet).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Directory to write the router to.")
@click.option("--catalog", type=click.Path(path_type=Path), help="Model catalog with prices (.yaml or .toml).")
@click.option("--test-outcomes", type=click.Path(path_type=Path), help="Evaluate on this file instead of a split of --outcomes.")
@click.option("--embedder", default="minilm", show_default=True, help="sentence-transformers model name or path.")
@click.option("--embedder-kind", default="sentence-transformers", show_default=True, type=click.Choice(["sentence-transformers", "hashing"]))
@click.option("--truncation", default="tail", show_default=True, type=click.Choice(["head", "tail", "head_tail"]))
@click.option("--backend", default="torch", show_default=True, type=click.Choice(["torch", "onnx"]),
              help="onnx: export the embedder to ONNX; the router then serves without torch.")
@click.option("--onnx-precision", default="int8", show_default=True, type=click.Choice(["int8", "fp32"]))
@click.option("--strategy", default="auto", show_default=True, type=click.Choice(["auto", "per_model", "cheapest_successful", "knn", "blend"]))
@click.option("--success-threshold", default=0.5, show_default=True, type=float)
@click.option("--test-size", default=0.2, show_default=True, type=float)
@click.option("--folds", default=5, show_default=True, type=int)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--models", help="Comma-separated subset of models to route between.")
@click.option("--duplicates", default="error", show_default=True, type=click.Choice(["error", "mean"]))
@click.option("--map", "column_map", multiple=True, metavar="SOURCE=TARGET", help="Rename an outcomes column to the contract's name.")
@click.option("--router-version", help="Version string stored in the router (default: name-time-datahash).")
@click.option("--cache-dir", type=click.Path(path_type=Path), help="Embedding cache directory.")
@click.option("--register", metavar="NAME", help="Register the router in the MLflow model registry under NAME.")
@click.option("--experiment", default="router-ml", show_default=True)
@click.option("--no-mlflow", is_flag=True, help="Do not log to MLflow.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Also write the evaluation report as JSON.")
@click.option("--report", "report_dir", type=click.Path(path_type=Path), help="Also write the held-out report folder (summary, JSON, plots).")
@click.option("--no-baselines", is_flag=True, help="Skip the learned baselines in the held-out report.")
def train(outcomes, out, catalog, test_outcomes, embedder, embedder_kind, truncation, backend, onnx_precision, strategy, success_threshold,
          test_size, folds, seed, models, duplicates, column_map, router_version, cache_dir, register, experiment,
          no_mlflow, overwrite, json_out, report_dir, no_baselines):
    """Train a router from an outcomes log and package it in --out."""
    from training.evaluation import format_report
    from training.pipeline import TrainConfig
    from training.pipeline import train as run_train

    if register and no_mlflow:
        _fail("--register needs MLflow; drop --no-mlflow")
    config = TrainConfig(
        outcomes=str(outcomes), out=str(out), catalog=str(catalog) if catalog else None,
        test_outcomes=str(test_outcomes) if test_outcomes else None, embedder=embedder, embedder_kind=embedder_kind,
        truncation=truncation, backend=backend, onnx_precision=onnx_precision, success_threshold=success_threshold, test_size=test_size, seed=seed,
        strategy=strategy, folds=folds, models=[m.strip() for m in models.split(",")] if models else None,
        duplicates=duplicates, column_map=_parse_pairs(column_map, "--map"), router_version=router_version,
        cache_dir=str(cache_dir) if cache_dir else None, overwrite=overwrite, register=register,
        experiment=experiment, mlflow=not no_mlflow, report_dir=str(report_dir) if report_dir else None,
        baselines=() if no_baselines else ("knn", "mlp", "sw_ranking"),
    )
    result = run_train(config, log=_echo_err, progress=sys.stderr.isatty())
    if result.report is not None:
        click.echo(format_report(result.report))
        if json_out:
            _write_json(json_out, result.report)


def _write_json(path: Path, obj) -> None:
    """JSON with NaN written as null (valid JSON for every reader)."""
    from router_ml.artifact import atomic_write_text
    from training.report import to_json_text

    atomic_write_text(path, to_json_text(obj))


@cli.command()
@click.option("--router", "router_path", required=True, help="Router directory or MLflow models:/ URI.")
@click.argument("prompt", required=False)
@click.option("--input", "input_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="JSONL of {\"prompt\": ...} to route.")
@click.option("--output", "output_path", type=click.Path(path_type=Path), help="JSONL to write the decisions to (with --input).")
@click.option("--quality-target", type=float, help="0 = cheapest, 1 = highest quality; default: the router's.")
@click.option("--format", "fmt", type=click.Choice(["json", "table"]), default="json", show_default=True,
              help="json: one decision object per line; table: a short readable summary.")
def route(router_path, prompt, input_path, output_path, quality_target, fmt):
    """Route PROMPT (or every line of --input) and print the decision as JSON."""
    if (prompt is None) == (input_path is None):
        _fail("give either a PROMPT or --input FILE.jsonl")
    if output_path and not input_path:
        _fail("--output goes with --input")
    from router_ml.router import load_router

    router = load_router(router_path)
    prompts = [prompt] if prompt is not None else _read_prompts_jsonl(input_path)
    decisions = router.route_batch(prompts, quality_target)
    if fmt == "table":
        lines = f"router {router.version}, quality_target {decisions[0].quality_target:g}\n" + "".join(
            f"{d.model:>18s}  p={d.confidence:.2f}  ~${d.estimated_cost:.2g}  {' '.join(p.split())[:70]}\n"
            for p, d in zip(prompts, decisions)
        )
    else:
        lines = "".join(json.dumps(d.to_dict()) + "\n" for d in decisions)
    if output_path:
        from router_ml.artifact import atomic_write_text

        atomic_write_text(output_path, lines)
        _echo_err(f"wrote {len(decisions)} decisions to {output_path}")
    else:
        click.echo(lines, nl=False)


def _read_prompts_jsonl(path: Path) -> list[str]:
    prompts = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                _fail(f"{path}: line {number}: not valid JSON ({exc.msg})")
            if not isinstance(record, dict) or not isinstance(record.get("prompt"), str):
                _fail(f"{path}: line {number}: expected an object with a string 'prompt'")
            prompts.append(record["prompt"])
    if not prompts:
        _fail(f"{path}: no prompts found")
    return prompts


@cli.command()
@click.option("--router", "router_path", required=True, help="Router directory or MLflow models:/ URI.")
@click.option("--outcomes", required=True, type=click.Path(path_type=Path), help="Held-out outcomes to evaluate on.")
@click.option("--catalog", type=click.Path(path_type=Path), help="Catalog to price calls whose cost was not logged (default: the router's prices).")
@click.option("--train-outcomes", type=click.Path(path_type=Path), help="The router's training outcomes, for the learned baselines (default: the file named in its manifest, if unchanged).")
@click.option("--success-threshold", default=0.5, show_default=True, type=float)
@click.option("--report", "report_dir", type=click.Path(path_type=Path), help="Write the report folder (summary.md, report.json, plots) here.")
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Write the full report as JSON.")
@click.option("--no-baselines", is_flag=True, help="Skip the learned baselines (kNN, MLP, SW ranking).")
@click.option("--no-mlflow", is_flag=True, help="Do not log an evaluation run to MLflow.")
@click.option("--experiment", default="router-ml", show_default=True)
@click.option("--cache-dir", type=click.Path(path_type=Path), help="Embedding cache directory.")
def evaluate(router_path, outcomes, catalog, train_outcomes, success_threshold, report_dir, json_out, no_baselines,
             no_mlflow, experiment, cache_dir):
    """Evaluate a router on held-out outcomes beside single models, oracle, random mixing and learned baselines."""
    from router_ml.catalog import load_catalog
    from router_ml.router import load_router
    from training.embed_cache import DiskCachedEmbedder
    from training.evaluation import BASELINES, evaluate_router, format_report, training_side
    from training.outcomes import data_hash, read_outcomes, to_routing_data

    router = load_router(router_path)
    frame = read_outcomes(outcomes, success_threshold=success_threshold)
    data = to_routing_data(frame, load_catalog(catalog) if catalog else None, str(outcomes), cost_model=router.cost_model)
    training = training_side(router, str(train_outcomes) if train_outcomes else None, log=_echo_err)
    report = evaluate_router(router, data, training=training, baselines=() if no_baselines else BASELINES,
                             embedder=DiskCachedEmbedder(router.embedder.embedder, cache_dir), source=str(outcomes),
                             log=_echo_err)
    click.echo(format_report(report))
    if report_dir:
        from training.report import write_report

        write_report(report, report_dir)
        _echo_err(f"wrote the report to {report_dir}")
    if json_out:
        _write_json(json_out, report)
    if not no_mlflow:
        from training.registry import log_evaluation_run

        run_id = log_evaluation_run(report, str(router_path), data_hash(frame), experiment)
        _echo_err(f"logged MLflow evaluation run {run_id}")


@cli.command()
@click.option("--outcomes", required=True, type=click.Path(path_type=Path), help="Held-out outcomes, the same for every router.")
@click.option("--name", help="Registered model whose versions to compare.")
@click.option("--versions", help="Comma-separated versions of --name (default: all).")
@click.option("--router", "routers", multiple=True, help="A router directory or models:/ URI (repeat).")
@click.option("--catalog", type=click.Path(path_type=Path), help="Catalog to price calls whose cost was not logged.")
@click.option("--success-threshold", default=0.5, show_default=True, type=float)
@click.option("--report", "report_dir", type=click.Path(path_type=Path), help="Folder for compare.md, compare.json and the overlaid curves (default: reports/compare-TIME).")
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Also write the side-by-side numbers as JSON.")
def compare(outcomes, name, versions, routers, catalog, success_threshold, report_dir, json_out):
    """Evaluate two or more router versions on the same held-out prompts, side by side."""
    import datetime as dt

    from router_ml.catalog import load_catalog
    from training.outcomes import read_outcomes
    from training.registry import compare_routers, routers_for
    from training.report import comparison_text, write_comparison

    sources = routers_for(name, [v.strip() for v in versions.split(",")] if versions else [], list(routers))
    frame = read_outcomes(outcomes, success_threshold=success_threshold)
    reports = compare_routers(sources, frame, load_catalog(catalog) if catalog else None, str(outcomes), log=_echo_err)
    report_dir = report_dir or Path("reports") / f"compare-{dt.datetime.now():%Y%m%d-%H%M%S}"
    out, summary = write_comparison(reports, report_dir)
    click.echo(f"{len(reports)} routers on the same {summary['prompts']} prompts of {outcomes}:")
    click.echo(comparison_text(summary))
    _echo_err(f"wrote {out / 'compare.md'}, {out / 'compare.json'} and {out / 'compare_curves.png'}")
    if json_out:
        _write_json(json_out, summary)


@cli.command()
@click.argument("name")
@click.argument("version")
@click.option("--alias", default="champion", show_default=True)
@click.option("--metric", default="aiq", show_default=True,
              type=click.Choice(["aiq", "gap_closed", "quality_at_best_cost", "apgr", "cost_to_match_best", "cpt50", "cpt80", "ece"]))
@click.option("--outcomes", type=click.Path(path_type=Path), help="Evaluate both versions on these held-out outcomes now (otherwise: earlier evaluations on the same data).")
@click.option("--catalog", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Promote even if worse; recorded on the version and the registered model.")
def promote(name, version, alias, metric, outcomes, catalog, force):
    """Point ALIAS at VERSION of NAME if it is at least as good as the current holder."""
    from router_ml.catalog import load_catalog
    from training.outcomes import read_outcomes
    from training.registry import promote as run_promote

    frame = read_outcomes(outcomes) if outcomes else None
    result = run_promote(name, version, alias, metric, frame=frame, catalog=load_catalog(catalog) if catalog else None,
                         source=str(outcomes) if outcomes else None, force=force, log=_echo_err)
    click.echo(json.dumps(result))


@cli.command()
@click.option("--router", "router_path", required=True, help="A router trained with the torch backend.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Directory for the converted router.")
@click.option("--backend", default="onnx", show_default=True, type=click.Choice(["onnx"]))
@click.option("--precision", default="auto", show_default=True, type=click.Choice(["auto", "int8", "fp32"]),
              help="auto: int8 if it passes the proof, else fp32.")
@click.option("--outcomes", type=click.Path(path_type=Path), help="Prompts to prove equivalence on (default: the router's training prompts).")
@click.option("--min-cosine", default=0.98, show_default=True, type=float, help="Required 1st-percentile cosine to torch's vectors.")
@click.option("--min-agreement", default=0.97, show_default=True, type=float, help="Required share of identical routes at the default target.")
@click.option("--force", is_flag=True, help="Write the router even if the proof fails (recorded in its manifest).")
@click.option("--overwrite", is_flag=True)
@click.option("--cache-dir", type=click.Path(path_type=Path), help="Where the ONNX export is cached.")
def convert(router_path, out, backend, precision, outcomes, min_cosine, min_agreement, force, overwrite, cache_dir):
    """Convert a router to the ONNX backend after proving it routes the same."""
    from training.convert import convert_router
    from training.outcomes import read_outcomes

    prompts = read_outcomes(outcomes)["prompt"].drop_duplicates().tolist() if outcomes else None
    result = convert_router(router_path, out, prompts, precision=precision, min_cosine=min_cosine, min_agreement=min_agreement, force=force,
                            overwrite=overwrite, cache_dir=str(cache_dir) if cache_dir else None, log=_echo_err)
    click.echo(json.dumps(result))


@cli.command()
@click.option("--router", "router_path", required=True, help="Router directory or models:/NAME@ALIAS URI to serve.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--audit", "audit_path", default="audit.sqlite", show_default=True, type=click.Path(path_type=Path),
              help="SQLite audit database (created if missing).")
@click.option("--no-audit", is_flag=True, help="Serve without an audit trail (outcomes cannot be recorded).")
@click.option("--prompt-storage", default="hash", show_default=True, type=click.Choice(["hash", "text"]),
              help="Keep prompts in the audit log as sha256 + length, or as text (needed to retrain from the log).")
@click.option("--exploration-rate", default=0.0, show_default=True, type=float,
              help="Share of requests sent to a different model, so that retraining sees every model.")
@click.option("--fallback-model", help="Model answered when the router itself fails (default: the dearest model).")
@click.option("--max-batch", default=1000, show_default=True, type=int, help="Most prompts per request (413 above).")
@click.option("--reload-interval", default=30.0, show_default=True, type=float,
              help="Seconds between registry checks for a new version under the alias (models:/ sources; 0 = off).")
@click.option("--flush-interval", default=0.2, show_default=True, type=float, help="Audit writer's commit interval (s).")
@click.option("--decision-cache", default=1024, show_default=True, type=click.IntRange(min=0),
              help="Decisions kept for repeated prompts (0 = off).")
@click.option("--embedding-cache", default=4096, show_default=True, type=click.IntRange(min=0),
              help="Prompt embeddings kept in memory (0 = off).")
@click.option("--policy", "policy_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Rules, cascade and fallbacks (YAML) applied to every request.")
@click.option("--catalog", "catalog_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Catalog with each model's base_url (and api_key_env): turns on POST /v1/chat/completions.")
def serve(router_path, host, port, audit_path, no_audit, prompt_storage, exploration_rate, fallback_model, max_batch,
          reload_interval, flush_interval, decision_cache, embedding_cache, policy_path, catalog_path):
    """Serve a router over HTTP (FastAPI on uvicorn), with an audit trail and Prometheus metrics."""
    import signal

    def stop_while_loading(signum, frame):
        raise SystemExit(0)  # nothing is served or written yet: leave cleanly

    signal.signal(signal.SIGTERM, stop_while_loading)
    import uvicorn

    import functools

    from router_ml.audit import AuditStore
    from router_ml.http import create_app
    from router_ml.router import load_router
    from router_ml.serving import RoutingService

    audit = None if no_audit else AuditStore(audit_path, prompt_storage=prompt_storage, flush_interval=flush_interval)
    try:
        loader = functools.partial(load_router, decision_cache_size=decision_cache, embedding_cache_size=embedding_cache)
        router = loader(router_path)
        policy = None
        if policy_path:
            from router_ml.rules import load_policy

            policy = load_policy(policy_path, router.models, router.cost_model.chars_per_token)
            for warning in policy.warnings:
                _echo_err(f"warning: {warning}")
        service = RoutingService(router_path, audit=audit, exploration_rate=exploration_rate,
                                 fallback_model=fallback_model, max_batch=max_batch, loader=loader, router=router,
                                 policy=policy)
        gateway = None
        if catalog_path:
            from router_ml.catalog import load_catalog
            from router_ml.gateway import Gateway, Upstreams
            from router_ml.rules import Fallbacks

            upstreams = Upstreams(load_catalog(catalog_path), policy.fallbacks if policy else Fallbacks(), router.models)
            gateway = Gateway(service, upstreams)
    except BaseException:
        if audit is not None:
            audit.close()
        raise
    if reload_interval > 0:
        service.watch_registry(reload_interval)
    app = create_app(service, gateway)
    _echo_err(f"serving {service.router.version} on http://{host}:{port} (docs at /docs)")
    # uvicorn handles SIGTERM/SIGINT while serving (stop accepting, drain requests in flight) and
    # re-raises the signal to the handler that was there before; this one lets us flush and exit 0.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, frame: None)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=20)
    finally:
        service.close()  # after uvicorn has drained the requests in flight: flush the audit log
        if gateway is not None:
            gateway.upstreams.close()
    _echo_err(f"stopped; audit log flushed ({audit.stats()['written']} decisions written)" if audit else "stopped")


@cli.command()
@click.option("--audit", "audit_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The service's audit database (decisions and reported outcomes).")
@click.option("--outcomes", "outcome_paths", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Offline outcomes logs to add (repeatable); prompts with every model's outcome form the holdout.")
@click.option("--base", required=True, help="The current router, e.g. models:/NAME@champion (its settings and prices are reused).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Directory for the challenger router.")
@click.option("--catalog", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Prices (default: the base router's).")
@click.option("--register", metavar="NAME", help="Registered model name (default: the base's).")
@click.option("--alias", default="champion", show_default=True)
@click.option("--metric", default="aiq", show_default=True, help="Metric the challenger must match or beat on the holdout.")
@click.option("--holdout-size", default=0.25, show_default=True, type=float, help="Share of complete prompts held out.")
@click.option("--since", type=float, help="Only decisions logged at or after this unix time.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--cache-dir", type=click.Path(path_type=Path), help="Embedding cache directory.")
@click.option("--no-promote", is_flag=True, help="Register the challenger but leave the alias alone.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
def retrain(audit_path, outcome_paths, base, out, catalog, register, alias, metric, holdout_size, since, seed, cache_dir,
            no_promote, overwrite):
    """Train a challenger from logged outcomes, evaluate it against --base, promote it if it wins."""
    from training.retrain import RetrainConfig
    from training.retrain import retrain as run_retrain

    config = RetrainConfig(audit=str(audit_path), base=base, out=str(out), outcomes=[str(p) for p in outcome_paths],
                           catalog=str(catalog) if catalog else None, register=register, alias=alias, metric=metric,
                           holdout_size=holdout_size, since=since, seed=seed,
                           cache_dir=str(cache_dir) if cache_dir else None, promote=not no_promote, overwrite=overwrite)
    result = run_retrain(config, log=_echo_err, progress=sys.stderr.isatty())
    click.echo(json.dumps({"challenger": str(result.challenger), "version": result.version, "promoted": result.promoted,
                           "decision": result.decision, "data": result.stats}, default=str))


@cli.command()
@click.option("--router", "router_path", required=True, help="Router directory or MLflow models:/ URI.")
@click.option("--outcomes", required=True, type=click.Path(path_type=Path), help="Historical outcomes to replay on.")
@click.option("--policy", "policies", multiple=True, metavar="[NAME=]FILE",
              help="A policy file (rules, cascade); repeat to compare several. Single-shot routing is always included.")
@click.option("--catalog", type=click.Path(path_type=Path), help="Catalog to price calls whose cost was not logged.")
@click.option("--false-pass", default=0.0, show_default=True, type=float, help="Simulated check: share of failed responses it lets through.")
@click.option("--false-fail", default=0.0, show_default=True, type=float, help="Simulated check: share of good responses it rejects.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--success-threshold", default=0.5, show_default=True, type=float)
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Write the full replay report as JSON.")
@click.option("--cache-dir", type=click.Path(path_type=Path), help="Embedding cache directory.")
def replay(router_path, outcomes, policies, catalog, false_pass, false_fail, seed, success_threshold, json_out, cache_dir):
    """Evaluate policies (rules + router + cascade) offline on an outcomes log, beside single-shot routing."""
    from router_ml.catalog import load_catalog
    from router_ml.router import load_router
    from router_ml.rules import load_policy
    from training.embed_cache import DiskCachedEmbedder
    from training.evaluation import training_side
    from training.outcomes import read_outcomes, to_routing_data
    from training.replay import format_replay
    from training.replay import replay as run_replay

    router = load_router(router_path)
    named = {"single-shot": None}
    for spec in policies:
        name, _, path = spec.rpartition("=")
        named[name or Path(path).stem] = load_policy(path, router.models, router.cost_model.chars_per_token)
        for warning in named[name or Path(path).stem].warnings:
            _echo_err(f"warning: {warning}")
    frame = read_outcomes(outcomes, success_threshold=success_threshold)
    data = to_routing_data(frame, load_catalog(catalog) if catalog else None, str(outcomes), cost_model=router.cost_model)
    report = run_replay(router, data, named, false_pass=false_pass, false_fail=false_fail, seed=seed,
                        source=str(outcomes), embedder=DiskCachedEmbedder(router.embedder.embedder, cache_dir),
                        training=training_side(router, log=_echo_err), log=_echo_err)
    click.echo(format_replay(report))
    if json_out:
        _write_json(json_out, report)


@cli.group()
def rules():
    """Policy files: check rules against a log."""


@rules.command("check")
@click.option("--policy", "policy_path", required=True, type=click.Path(path_type=Path), help="The policy file.")
@click.option("--router", "router_path", help="Router whose models the rules may name (or --catalog).")
@click.option("--catalog", type=click.Path(path_type=Path), help="Catalog whose models the rules may name.")
@click.option("--outcomes", type=click.Path(path_type=Path), help="An outcomes log: rules are applied to each prompt (metadata: task).")
@click.option("--audit", "audit_path", type=click.Path(path_type=Path), help="An audit database: counts the rules recorded as fired.")
def rules_check(policy_path, router_path, catalog, outcomes, audit_path):
    """Validate a policy and report rules that shadow others or never fired on a log (exit 1 if any)."""
    from router_ml.rules import load_policy

    if bool(router_path) == bool(catalog):
        _fail("give --router or --catalog (the models the rules may name)")
    if router_path:
        from router_ml.router import load_router

        router = load_router(router_path)
        models, cpt = router.models, router.cost_model.chars_per_token
    else:
        from router_ml.catalog import load_catalog

        cat = load_catalog(catalog)
        models, cpt = list(cat.models), cat.chars_per_token
    policy = load_policy(policy_path, models, cpt)
    counts = {rule.name: 0 for rule in policy.rules}
    seen = 0
    if outcomes:
        from training.outcomes import read_outcomes

        frame = read_outcomes(outcomes).drop_duplicates("prompt_id")
        for prompt, task in zip(frame["prompt"], frame["task"]):
            for name in policy.apply_rules(prompt, {"task": task} if task is not None else {}).fired:
                counts[name] += 1
        seen = len(frame)
    if audit_path:
        from router_ml.audit import read_joined

        decisions = read_joined(audit_path)
        for d in decisions:
            for name in (d["rule"] or "").split(","):
                if name in counts:
                    counts[name] += 1
        seen += len(decisions)
    problems = list(policy.warnings)
    for rule in policy.rules:
        click.echo(f"line {rule.line:4d}  {rule.name:30s} fired {counts[rule.name]:7d}  {rule.describe()}")
    if outcomes or audit_path:
        problems += [f"{policy_path}:{r.line}: rule {r.name!r} never fired on {seen} requests"
                     for r in policy.rules if counts[r.name] == 0]
    for problem in problems:
        click.echo(f"warning: {problem}")
    click.echo(f"{len(policy.rules)} rules, {len(problems)} warnings")
    if problems:
        raise click.exceptions.Exit(1)


@cli.command("demo-data")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Directory for outcomes.csv and catalog.yaml.")
@click.option("--prompts", default=2400, show_default=True, type=int)
@click.option("--seed", default=7, show_default=True, type=int)
def demo_data(out, prompts, seed):
    """Write the synthetic demo outcomes log and its catalog (deterministic)."""
    from training.demo_data import write_demo

    paths = write_demo(out, n_prompts=prompts, seed=seed)
    click.echo(json.dumps({k: str(v) for k, v in paths.items()}))


def main(argv: list[str] | None = None) -> int:
    """Entry point: one-line errors, exit 2 for bad arguments or bad input."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    args = sys.argv[1:] if argv is None else argv
    command = next((a for a in args if not a.startswith("-")), "")
    prefix = f"router-ml {command}".strip()
    try:
        code = cli.main(args=args, prog_name="router-ml", standalone_mode=False)
        if isinstance(code, int):  # click returns ctx.exit()'s code when not standalone
            return code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo(f"{prefix}: aborted", err=True)
        return 130
    except click.ClickException as exc:
        click.echo(f"{prefix}: error: {' '.join(exc.format_message().split())}", err=True)
        return EXIT_BAD_INPUT
    except RouterError as exc:
        click.echo(f"{prefix}: error: {' '.join(str(exc).split())}", err=True)
        return EXIT_REFUSED if type(exc).__name__ == "PromotionRefused" else EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
