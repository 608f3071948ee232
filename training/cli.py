"""The training commands of `router-ml`: import, demo-data, train, evaluate, compare, promote,
versions, convert, retrain and replay.

They attach to the library's `router-ml` group as entry points (pyproject.toml,
`router_ml.commands`); each maps its options to a call into `training` and prints what
comes back. Heavy modules are imported inside each command so `--help` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from router_ml.core.cli import echo_err, fail


def parse_pairs(values: tuple[str, ...], option: str, convert=str) -> dict:
    """KEY=VALUE options as a dict, or a usage error naming the option."""
    pairs = {}
    for value in values:
        key, sep, raw = value.partition("=")
        if not sep or not key or not raw:
            fail(f"{option}: expected KEY=VALUE, found {value!r}")
        try:
            pairs[key] = convert(raw)
        except ValueError:
            fail(f"{option}: {value!r}: the value is not a {convert.__name__}")
    return pairs


def write_json(path: Path, obj) -> None:
    """JSON with NaN written as null (valid JSON for every reader), written atomically."""
    from router_ml.core.files import atomic_write_text
    from router_ml.training.evaluate.report import to_json_text

    atomic_write_text(path, to_json_text(obj))


@click.command("import")
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
    from router_ml.training.data import importers

    costs = parse_pairs(call_cost, "--call-cost", float)
    result = importers.run_import(format, src, out, prices=prices, tasks=tasks, contaminated=contaminated,
                                  call_costs=costs, catalog_out=catalog_out, overwrite=overwrite, log=echo_err)
    click.echo(json.dumps(result))


@click.command()
@click.option("--outcomes", required=True, type=click.Path(path_type=Path), help="Outcomes log (.csv, .jsonl, .parquet).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Directory to write the router to.")
@click.option("--catalog", type=click.Path(path_type=Path), help="Model catalog with prices (.yaml or .toml).")
@click.option("--test-outcomes", type=click.Path(path_type=Path), help="Evaluate on this file instead of a split of --outcomes.")
@click.option("--embedder", default="minilm", show_default=True, help="sentence-transformers model name or path.")
@click.option("--embedder-kind", default="sentence-transformers", show_default=True,
              type=click.Choice(["sentence-transformers", "static", "hashing"]),
              help="static: token vectors distilled from --embedder (model2vec); serves with numpy and tokenizers only.")
@click.option("--static-max-tokens", default=0, show_default=True, type=click.IntRange(min=0),
              help="static: tokens of each prompt it sees, cut by --truncation (0: the whole prompt).")
@click.option("--truncation", default="tail", show_default=True, type=click.Choice(["head", "tail", "head_tail"]))
@click.option("--backend", default="torch", show_default=True, type=click.Choice(["torch", "onnx"]),
              help="onnx: export the embedder to ONNX; the router then serves without torch.")
@click.option("--onnx-precision", default="fp32", show_default=True, type=click.Choice(["int8", "fp32"]),
              help="fp32 routes as torch does; int8 is faster but fails the equivalence proof (README).")
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
@click.option("--overwrite", is_flag=True, help="Replace --out if it is a router (its manifest and the files it lists, nothing else).")
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Also write the evaluation report as JSON.")
@click.option("--report", "report_dir", type=click.Path(path_type=Path), help="Also write the held-out report folder (summary, JSON, plots).")
@click.option("--no-baselines", is_flag=True, help="Skip the learned baselines in the held-out report.")
@click.option("--no-verifier", is_flag=True,
              help="Do not learn a verifier and cascades from the answers, even when the outcomes have a response column.")
@click.option("--no-neighbours", is_flag=True,
              help="Do not keep training prompts in the router (no explanations by example, no novelty).")
@click.option("--spark-master", metavar="MASTER",
              help="Read, check, label and embed on Spark (local[N], spark://..., yarn, sc://host:15002 for Spark Connect); "
                   "the heads are fitted on the driver. Needs router-ml[spark].")
@click.option("--max-driver-prompts", default=250_000, show_default=True, type=click.IntRange(min=100),
              help="With --spark-master: above this many prompts, fit on a sample stratified by label.")
def train(outcomes, out, catalog, test_outcomes, embedder, embedder_kind, static_max_tokens, truncation, backend, onnx_precision, strategy, success_threshold,
          test_size, folds, seed, models, duplicates, column_map, router_version, cache_dir, register, experiment,
          no_mlflow, overwrite, json_out, report_dir, no_baselines, no_neighbours, no_verifier, spark_master,
          max_driver_prompts):
    """Train a router from an outcomes log and package it in --out."""
    from router_ml.training.evaluate.evaluation import format_report
    from router_ml.training.fit.pipeline import TrainConfig
    from router_ml.training.fit.pipeline import train as run_train

    if register and no_mlflow:
        fail("--register needs MLflow; drop --no-mlflow")
    config = TrainConfig(
        outcomes=str(outcomes), out=str(out), catalog=str(catalog) if catalog else None,
        test_outcomes=str(test_outcomes) if test_outcomes else None, embedder=embedder, embedder_kind=embedder_kind,
        static_max_tokens=static_max_tokens,
        truncation=truncation, backend=backend, onnx_precision=onnx_precision, success_threshold=success_threshold, test_size=test_size, seed=seed,
        strategy=strategy, folds=folds, models=[m.strip() for m in models.split(",")] if models else None,
        duplicates=duplicates, column_map=parse_pairs(column_map, "--map"), router_version=router_version,
        cache_dir=str(cache_dir) if cache_dir else None, overwrite=overwrite, register=register,
        experiment=experiment, mlflow=not no_mlflow, report_dir=str(report_dir) if report_dir else None,
        baselines=() if no_baselines else ("knn", "mlp", "sw_ranking"), neighbours=not no_neighbours,
        verifier=not no_verifier, spark_master=spark_master, max_driver_prompts=max_driver_prompts,
    )
    result = run_train(config, log=echo_err, progress=sys.stderr.isatty())
    if result.report is not None:
        click.echo(format_report(result.report))
        if json_out:
            write_json(json_out, result.report)


@click.command()
@click.option("--router", "router_paths", required=True, multiple=True,
              help="Router directory or MLflow models:/ URI (repeat with --audit to judge several).")
@click.option("--outcomes", type=click.Path(path_type=Path),
              help="Held-out outcomes to evaluate on (every model's outcome on each prompt).")
@click.option("--audit", "audit_path", type=click.Path(path_type=Path),
              help="Judge the routers from a live audit log alone (a database or an audit export folder): "
                   "doubly robust estimates from the served models' outcomes and the logged serving distributions.")
@click.option("--policy", "policies", multiple=True,
              help="With --audit: a policy file for the --router at the same position (rules, novelty guard), or "
                   "'none'; give one per --router or none at all.")
@click.option("--quality-target", type=click.FloatRange(0, 1),
              help="With --audit: judge every router at this target (default: each router's own default).")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
              help="With --audit: only decisions logged from this day or time on (UTC).")
@click.option("--resamples", default=1000, show_default=True, type=click.IntRange(min=100),
              help="With --audit: bootstrap resamples of the logged requests for the intervals.")
@click.option("--catalog", type=click.Path(path_type=Path), help="Catalog to price calls whose cost was not logged (default: the router's prices).")
@click.option("--train-outcomes", type=click.Path(path_type=Path), help="The router's training outcomes, for the learned baselines (default: the file named in its manifest, if unchanged).")
@click.option("--success-threshold", default=0.5, show_default=True, type=float)
@click.option("--report", "report_dir", type=click.Path(path_type=Path), help="Write the report folder (summary.md, report.json, plots) here.")
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Write the full report as JSON.")
@click.option("--no-baselines", is_flag=True, help="Skip the learned baselines (kNN, MLP, SW ranking).")
@click.option("--no-mlflow", is_flag=True, help="Do not log an evaluation run to MLflow.")
@click.option("--experiment", default="router-ml", show_default=True)
@click.option("--cache-dir", type=click.Path(path_type=Path), help="Embedding cache directory.")
@click.option("--spark-master", metavar="MASTER", help="Read and embed on Spark (see train --spark-master).")
def evaluate(router_paths, outcomes, audit_path, policies, quality_target, since, resamples, catalog, train_outcomes,
             success_threshold, report_dir, json_out, no_baselines, no_mlflow, experiment, cache_dir, spark_master):
    """Evaluate a router on held-out outcomes beside single models, oracle, random mixing and learned baselines;
    or, with --audit, judge one or more routers from a live audit log."""
    if (outcomes is None) == (audit_path is None):
        fail("give --outcomes (a log with every model's outcome) or --audit (a live audit log), not both")
    if audit_path is not None:
        for option, value in (("--report", report_dir), ("--train-outcomes", train_outcomes),
                              ("--spark-master", spark_master)):
            if value:
                fail(f"{option} goes with --outcomes, not --audit")
        _evaluate_audit(router_paths, audit_path, policies, quality_target, since, resamples, json_out)
        return
    if len(router_paths) > 1 or policies or quality_target is not None or since is not None:
        fail("several --router, --policy, --quality-target and --since go with --audit; to compare routers on "
             "--outcomes use router-ml compare")
    router_path = router_paths[0]
    from router_ml.core.catalog import load_catalog
    from router_ml.core.router import load_router
    from router_ml.training.data.outcomes import data_hash, read_outcomes, to_routing_data
    from router_ml.training.embed.cache import DiskCachedEmbedder
    from router_ml.training.evaluate.evaluation import BASELINES, evaluate_router, format_report, training_side

    router = load_router(router_path)
    reader, embedder = read_outcomes, DiskCachedEmbedder(router.embedder.embedder, cache_dir)
    if spark_master:
        from router_ml.training.embed.spark import router_inputs

        reader, embedder = router_inputs(spark_master, router, cache_dir, log=echo_err)
    frame = reader(outcomes, success_threshold=success_threshold)
    data = to_routing_data(frame, load_catalog(catalog) if catalog else None, str(outcomes), cost_model=router.cost_model)
    training = training_side(router, str(train_outcomes) if train_outcomes else None, log=echo_err,
                             reader=reader if spark_master else None)
    report = evaluate_router(router, data, training=training, baselines=() if no_baselines else BASELINES,
                             embedder=embedder, source=str(outcomes), log=echo_err)
    if str(router_path).startswith("models:/"):
        from router_ml.core.mlflow_registry import import_mlflow, resolve_model_version

        found = resolve_model_version(import_mlflow().MlflowClient(), str(router_path))
        click.echo(f"{router_path}: registered {found.name} version {found.version} (v{found.version})")
    click.echo(format_report(report))
    if report_dir:
        from router_ml.training.evaluate.report import write_report

        write_report(report, report_dir)
        echo_err(f"wrote the report to {report_dir}")
    if json_out:
        write_json(json_out, report)
    if not no_mlflow:
        from router_ml.training.registry.tracking import log_evaluation_run

        run_id = log_evaluation_run(report, str(router_path), data_hash(frame), experiment)
        echo_err(f"logged MLflow evaluation run {run_id} (evaluation set {report['eval_set']['id']}, "
                 f"{report['eval_set']['prompts']} prompts)")


METRIC_CHOICE = click.Choice(["aiq", "gap_closed", "quality_at_best_cost", "apgr", "cost_to_match_best", "cpt50", "cpt80",
                              "ece"])


def _evaluate_audit(router_paths, audit_path, policies, quality_target, since, resamples, json_out) -> None:
    """evaluate --audit: every --router (with its --policy) judged from the audit log alone."""
    from router_ml.core.router import load_router
    from router_ml.policy.file import load_policy
    from router_ml.training.evaluate.off_policy import Judged, evaluate_audit, format_estimates, read_traffic

    if policies and len(policies) != len(router_paths):
        fail(f"give one --policy per --router (or 'none'), found {len(policies)} for {len(router_paths)} routers")
    judged = []
    for i, path in enumerate(router_paths):
        router = load_router(path)
        spec = policies[i] if policies else "none"
        policy = None if spec == "none" else load_policy(spec, router.models, router.cost_model.chars_per_token)
        label = path if policy is None else f"{path} + {spec}"
        judged.append(Judged(label, router, policy, quality_target))
    import datetime as dt

    start = since.replace(tzinfo=dt.UTC).timestamp() if since else None
    traffic = read_traffic(audit_path, start, log=echo_err)
    report = evaluate_audit(traffic, judged, resamples=resamples, log=echo_err)
    click.echo(format_estimates(report))
    if json_out:
        write_json(json_out, report)


@click.command()
@click.option("--outcomes", required=True, type=click.Path(path_type=Path), help="Held-out outcomes, the same for every router.")
@click.option("--name", help="Registered model whose versions to compare.")
@click.option("--versions", help="Comma-separated versions of --name (default: all).")
@click.option("--router", "routers", multiple=True, help="A router directory or models:/ URI (repeat).")
@click.option("--catalog", type=click.Path(path_type=Path), help="Catalog to price calls whose cost was not logged.")
@click.option("--success-threshold", default=0.5, show_default=True, type=float)
@click.option("--metric", default="aiq", show_default=True, type=METRIC_CHOICE,
              help="The metric the verdict (and the MLflow run's decision) is about; every metric gets an interval.")
@click.option("--resamples", default=1000, show_default=True, type=click.IntRange(min=100),
              help="Paired bootstrap resamples for the intervals.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--report", "report_dir", type=click.Path(path_type=Path), help="Folder for compare.md, compare.json and the overlaid curves (default: reports/compare-TIME).")
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Also write the side-by-side numbers as JSON.")
@click.option("--no-mlflow", is_flag=True, help="Do not log the comparison as an MLflow run.")
@click.option("--experiment", default="router-ml", show_default=True)
def compare(outcomes, name, versions, routers, catalog, success_threshold, metric, resamples, seed, report_dir, json_out,
            no_mlflow, experiment):
    """Evaluate two or more router versions on the same held-out prompts, side by side, with paired intervals.

    Differences are taken against the first router (with --name, the lowest version) and
    each comes with a 95% paired bootstrap interval; registered versions are named v1, v2.
    The comparison is logged as an MLflow run and indexed on each registered version."""
    import datetime as dt

    from router_ml.core.catalog import load_catalog
    from router_ml.training.data.outcomes import read_outcomes
    from router_ml.training.evaluate.metrics import noisy_note
    from router_ml.training.evaluate.report import comparison_text, differences_text, write_comparison
    from router_ml.training.registry.versions import compare_routers, log_comparison, routers_for

    sources = routers_for(name, [v.strip() for v in versions.split(",")] if versions else [], list(routers))
    frame = read_outcomes(outcomes, success_threshold=success_threshold)
    result = compare_routers(sources, frame, load_catalog(catalog) if catalog else None, str(outcomes),
                             resamples=resamples, seed=seed, log=echo_err)
    report_dir = report_dir or Path("reports") / f"compare-{dt.datetime.now():%Y%m%d-%H%M%S}"
    out, summary = write_comparison(result.reports, report_dir, result.summary())
    click.echo(f"{len(result.refs)} routers on the same {result.prompts} prompts of {outcomes}{noisy_note(result.prompts)}, "
               f"evaluation set {result.eval_set['id']}:")
    for ref in result.refs:
        click.echo(f"  {ref.label}: {ref.source} (router {ref.router_version})")
    click.echo(comparison_text(summary))
    click.echo("")
    click.echo(f"differences against {result.reference.label}, {result.confidence:.0%} paired bootstrap intervals "
               f"({resamples} resamples of the same prompts):")
    click.echo(differences_text(summary))
    if result.warning():
        echo_err(f"warning: {result.warning()}")
    echo_err(f"wrote {out / 'compare.md'}, {out / 'compare.json'} and {out / 'compare_curves.png'}")
    if json_out:
        write_json(json_out, summary)
    if not no_mlflow:
        run_id = log_comparison(result, metric, experiment, out)
        echo_err(f"logged MLflow comparison run {run_id}")


@click.command()
@click.argument("name")
@click.argument("version")
@click.option("--alias", default="champion", show_default=True)
@click.option("--metric", default="aiq", show_default=True, type=METRIC_CHOICE)
@click.option("--outcomes", type=click.Path(path_type=Path), help="Evaluate both versions on these held-out outcomes now (otherwise: earlier evaluations of both on the same prompts).")
@click.option("--catalog", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Promote even if worse; recorded on the version and the registered model.")
@click.option("--experiment", default="router-ml", show_default=True, help="MLflow experiment of the promotion run.")
def promote(name, version, alias, metric, outcomes, catalog, force, experiment):
    """Point ALIAS at VERSION of NAME if it is at least as good as the current holder.

    The decision, refused or not, is logged as an MLflow run."""
    from router_ml.core.catalog import load_catalog
    from router_ml.training.data.outcomes import read_outcomes
    from router_ml.training.registry.versions import promote as run_promote

    frame = read_outcomes(outcomes) if outcomes else None
    result = run_promote(name, version, alias, metric, frame=frame, catalog=load_catalog(catalog) if catalog else None,
                         source=str(outcomes) if outcomes else None, force=force, experiment=experiment, log=echo_err)
    click.echo(json.dumps(result, default=str))


@click.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON (every metric of every evaluation).")
def versions(name, as_json):
    """List the versions of registered router NAME: aliases, evaluations and decisions.

    Each version with when it was created, its router version string and the run that
    logged it; its evaluations, one per evaluation set (the fingerprint of the prompts
    measured, how many, the metrics, the run); and the compare, promote and retrain runs
    that touched it."""
    from router_ml.training.registry.history import format_history, version_history

    history = version_history(name)
    if as_json:
        from router_ml.training.evaluate.report import to_json_text

        click.echo(to_json_text(history), nl=False)
    else:
        click.echo(format_history(history))


@click.command()
@click.option("--router", "router_path", required=True, help="A router trained with the torch backend.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Directory for the converted router.")
@click.option("--backend", default="onnx", show_default=True, type=click.Choice(["onnx"]))
@click.option("--precision", default="auto", show_default=True, type=click.Choice(["auto", "int8", "fp32"]),
              help="auto: int8 if it passes the proof, else fp32.")
@click.option("--outcomes", type=click.Path(path_type=Path), help="Prompts to prove equivalence on (default: the router's training prompts).")
@click.option("--min-cosine", default=0.98, show_default=True, type=float, help="Required 1st-percentile cosine to torch's vectors.")
@click.option("--min-agreement", default=0.97, show_default=True, type=float, help="Required share of identical routes at the default target.")
@click.option("--force", is_flag=True, help="Write the router even if the proof fails (recorded in its manifest).")
@click.option("--overwrite", is_flag=True, help="Replace --out if it is a router (its manifest and the files it lists, nothing else).")
@click.option("--cache-dir", type=click.Path(path_type=Path), help="Where the ONNX export is cached.")
def convert(router_path, out, backend, precision, outcomes, min_cosine, min_agreement, force, overwrite, cache_dir):
    """Convert a router to the ONNX backend after proving it routes the same."""
    from router_ml.training.data.outcomes import read_outcomes
    from router_ml.training.embed.onnx_convert import convert_router

    prompts = read_outcomes(outcomes)["prompt"].drop_duplicates().tolist() if outcomes else None
    result = convert_router(router_path, out, prompts, precision=precision, min_cosine=min_cosine, min_agreement=min_agreement, force=force,
                            overwrite=overwrite, cache_dir=str(cache_dir) if cache_dir else None, log=echo_err)
    click.echo(json.dumps(result))


@click.command()
@click.option("--audit", "audit_path", required=True, type=click.Path(exists=True, path_type=Path),
              help="The service's audit database (decisions and reported outcomes), or a folder written by "
                   "`router-ml audit export`; read, never changed.")
@click.option("--outcomes", "outcome_paths", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Offline outcomes logs to add (repeatable); prompts with every model's outcome can be held out.")
@click.option("--base", required=True, help="The current router, e.g. models:/NAME@champion (its settings and prices are reused).")
@click.option("--base-outcomes", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The log the base was trained on, when the file its manifest names is gone or changed.")
@click.option("--audit-key-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The audit log's digest secret, to recognise prompts logged as digests (default: the audit database's path with .key appended, e.g. audit.sqlite.key).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Directory for the challenger router.")
@click.option("--catalog", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Prices (default: the base router's).")
@click.option("--register", metavar="NAME", help="Registered model name (default: the base's).")
@click.option("--alias", default="champion", show_default=True)
@click.option("--metric", default="aiq", show_default=True, type=METRIC_CHOICE,
              help="Metric the challenger must be at least as good on.")
@click.option("--margin", default=0.0, show_default=True, type=float,
              help="Promote when the 95% lower bounds of the improvements (live: quality and AIQ; complete prompts: "
                   "--metric) are >= -margin.")
@click.option("--live-holdout", default=0.3, show_default=True, type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Share of the logged requests (with outcomes) held out from the challenger to judge both on.")
@click.option("--holdout-size", default=0.25, show_default=True, type=float,
              help="Share of eligible complete prompts (every model's outcome, not trained on) held out too.")
@click.option("--min-holdout", default=200, show_default=True, type=int,
              help="Complete prompts held out at least, where there are that many.")
@click.option("--min-complete", default=50, show_default=True, type=click.IntRange(1),
              help="Fewer eligible complete prompts than this: no complete judgement (the live log judges alone).")
@click.option("--min-live-requests", default=100, show_default=True, type=click.IntRange(1),
              help="Fewer held-out logged requests than this: no live judgement.")
@click.option("--resamples", default=1000, show_default=True, type=int, help="Paired bootstrap resamples.")
@click.option("--max-weight", default=5.0, show_default=True, type=float, help="Cap on inverse-propensity weights.")
@click.option("--since", type=float, help="Only decisions logged at or after this unix time.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--cache-dir", type=click.Path(path_type=Path), help="Embedding cache directory.")
@click.option("--no-promote", is_flag=True, help="Register the challenger but leave the alias alone.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it is a router (its manifest and the files it lists, nothing else).")
@click.option("--spark-master", metavar="MASTER", help="Train the challenger on Spark (see train --spark-master).")
def retrain(audit_path, outcome_paths, base, base_outcomes, audit_key_file, out, catalog, register, alias, metric, margin,
            live_holdout, holdout_size, min_holdout, min_complete, min_live_requests, resamples, max_weight, since, seed, cache_dir, no_promote, overwrite,
            spark_master):
    """Train a challenger on everything the base learned plus the logs; promote it only if it is at least as good.

    Judged on a held-out part of the live traffic (doubly robust estimates from the served outcomes)
    and, where prompts with every model's outcome exist, on those too. Exits 1 when the challenger is
    not promoted (or the evidence cannot tell).
    """
    from router_ml.training.loop.retrain import RetrainConfig
    from router_ml.training.loop.retrain import retrain as run_retrain

    config = RetrainConfig(audit=str(audit_path), base=base, out=str(out), outcomes=[str(p) for p in outcome_paths],
                           base_outcomes=str(base_outcomes) if base_outcomes else None,
                           audit_key_file=str(audit_key_file) if audit_key_file else None,
                           catalog=str(catalog) if catalog else None, register=register, alias=alias, metric=metric,
                           margin=margin, live_holdout=live_holdout, holdout_size=holdout_size,
                           min_holdout=min_holdout, min_complete=min_complete,
                           min_live_requests=min_live_requests, resamples=resamples,
                           max_weight=max_weight, since=since, seed=seed,
                           cache_dir=str(cache_dir) if cache_dir else None, promote=not no_promote, overwrite=overwrite,
                           spark_master=spark_master)
    result = run_retrain(config, log=echo_err, progress=sys.stderr.isatty())
    click.echo(json.dumps(result.to_dict(), default=str))
    if not no_promote and not result.promoted:
        raise click.exceptions.Exit(1)


@click.command()
@click.option("--router", "router_path", required=True, help="Router directory or MLflow models:/ URI.")
@click.option("--outcomes", required=True, type=click.Path(path_type=Path), help="Historical outcomes to replay on.")
@click.option("--policy", "policies", multiple=True, metavar="[NAME=]FILE",
              help="A policy file (rules, cascade), or learned-cascade (the router's own, when it has a verifier); "
                   "repeat to compare several. Single-shot routing is always included.")
@click.option("--catalog", type=click.Path(path_type=Path), help="Catalog to price calls whose cost was not logged.")
@click.option("--false-pass", default=0.0, show_default=True, type=float, help="Simulated check: share of failed responses it lets through.")
@click.option("--false-fail", default=0.0, show_default=True, type=float, help="Simulated check: share of good responses it rejects.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--success-threshold", default=0.5, show_default=True, type=float)
@click.option("--targets", help="Quality targets to sweep, comma-separated (e.g. 0,0.1,0.5,1); default: the router's "
                                "grid. The router's default target is always included.")
@click.option("--json", "json_out", type=click.Path(path_type=Path),
              help="Write the replay report as JSON: per policy a summary (AIQ, gap closed, cost to match the best "
                   "model, quality at its cost, calls per request, share escalated), the curve and the default point.")
@click.option("--decisions", "decisions_out", type=click.Path(path_type=Path),
              help="Write every decision as JSONL: policy, quality_target, prompt_id (from the log, else null), "
                   "prompt_sha256, called (models in call order), answered_by.")
@click.option("--cache-dir", type=click.Path(path_type=Path), help="Embedding cache directory.")
@click.option("--spark-master", metavar="MASTER", help="Read and embed on Spark (see train --spark-master).")
def replay(router_path, outcomes, policies, catalog, false_pass, false_fail, seed, success_threshold, targets, json_out,
           decisions_out, cache_dir, spark_master):
    """Evaluate policies (rules + router + cascade) offline on an outcomes log, beside single-shot routing.

    When the log has responses, checks and the learned verifier read each logged answer."""
    from router_ml.core.catalog import load_catalog
    from router_ml.core.router import load_router
    from router_ml.policy.file import load_policy
    from router_ml.training.data.outcomes import read_outcomes, to_routing_data
    from router_ml.training.embed.cache import DiskCachedEmbedder
    from router_ml.training.evaluate.evaluation import training_side
    from router_ml.training.evaluate.replay import format_replay
    from router_ml.training.evaluate.replay import replay as run_replay

    router = load_router(router_path)
    named = {"single-shot": None}
    for spec in policies:
        name, _, path = spec.rpartition("=")
        named[name or Path(path).stem] = load_policy(path, router.models, router.cost_model.chars_per_token)
        for warning in named[name or Path(path).stem].warnings:
            echo_err(f"warning: {warning}")
    sweep = None
    if targets:
        try:
            sweep = [float(t) for t in targets.split(",") if t.strip()]
        except ValueError:
            fail(f"--targets: expected comma-separated numbers in [0, 1], found {targets!r}")
        if not sweep or any(not 0.0 <= t <= 1.0 for t in sweep):
            fail(f"--targets: expected comma-separated numbers in [0, 1], found {targets!r}")
    reader, embedder = read_outcomes, DiskCachedEmbedder(router.embedder.embedder, cache_dir)
    if spark_master:
        from router_ml.training.embed.spark import router_inputs

        reader, embedder = router_inputs(spark_master, router, cache_dir, log=echo_err)
    frame = reader(outcomes, success_threshold=success_threshold)
    data = to_routing_data(frame, load_catalog(catalog) if catalog else None, str(outcomes), cost_model=router.cost_model)
    lines = [] if decisions_out else None
    report = run_replay(router, data, named, false_pass=false_pass, false_fail=false_fail, seed=seed, targets=sweep,
                        source=str(outcomes), embedder=embedder,
                        training=training_side(router, log=echo_err, reader=reader if spark_master else None),
                        log=echo_err,
                        decisions=None if lines is None else lambda record: lines.append(json.dumps(record)))
    click.echo(format_replay(report))
    if json_out:
        write_json(json_out, report)
    if decisions_out:
        from router_ml.core.files import atomic_write_text

        atomic_write_text(decisions_out, "".join(line + "\n" for line in lines))
        echo_err(f"wrote {len(lines):,} decisions to {decisions_out}")


@click.command("demo-data")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Directory for outcomes.csv, holdout.csv, catalog.yaml and catalog-local.yaml (the models' "
                   "endpoints on `router-ml demo-upstream`).")
@click.option("--prompts", default=2400, show_default=True, type=int)
@click.option("--seed", default=7, show_default=True, type=int)
def demo_data(out, prompts, seed):
    """Write the synthetic demo outcomes log and its catalog (deterministic)."""
    from router_ml.training.data.demo import write_demo

    paths = write_demo(out, n_prompts=prompts, seed=seed)
    click.echo(json.dumps({k: str(v) for k, v in paths.items()}))


@click.command()
@click.option("--audit", "audit_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The service's audit database; read, never changed.")
@click.option("--router", "router_path", help="The router served (directory or models:/ URI): prices the exploration.")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
              help="Only decisions logged from this day or time on (UTC).")
@click.option("--bucket", default="auto", show_default=True, type=click.Choice(["auto", "hour", "day"]),
              help="Period of each row and plotted point (auto: hours for under three days of log, else days).")
@click.option("--png", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the novelty share and each model's calibration drift over time as a PNG.")
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Also write the report as JSON.")
def monitor(audit_path, router_path, since, bucket, png, json_out):
    """Drift and exploration over time from the audit log: novel traffic, each model's calibration drift
    (observed against predicted success), what exploration cost, and what crosses the alert thresholds."""
    import datetime as dt

    from router_ml.training.loop.monitor import format_monitor
    from router_ml.training.loop.monitor import monitor as run_monitor

    router = None
    if router_path:
        from router_ml.core.router import load_router

        router = load_router(router_path)
    start = since.replace(tzinfo=dt.UTC).timestamp() if since else None
    report = run_monitor(audit_path, router, since=start, bucket=bucket, png=png, log=echo_err)
    click.echo(format_monitor(report))
    if json_out:
        write_json(json_out, report)


@click.command("demo-upstream")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=9000, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (data/demo/catalog-local.yaml names 9000).")
@click.option("--seed", default=7, show_default=True, type=int, help="Draws of success per (prompt, model).")
def demo_upstream(host, port, seed):
    """Serve the five SYNTHETIC demo models as an OpenAI-compatible provider on localhost, so the gateway
    runs with no account or key: `router-ml serve ... --catalog data/demo/catalog-local.yaml`. Answers come
    from the demo log's templates (right or wrong as the demo's models would be); Ctrl-C stops it."""
    import signal

    from router_ml.training.data.demo_upstream import DemoUpstream

    try:
        upstream = DemoUpstream(host, port, seed)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port} ({exc.strerror or exc}); pass another --port (and point the "
             "catalog's base_url at it)")
    echo_err(f"demo upstream: nano, coder, mini, pro and legacy-xl (synthetic answers) on {upstream.url}; "
             "Ctrl-C to stop")
    signal.signal(signal.SIGTERM, _stop)  # a stop from a process manager: as Ctrl-C, exit 0
    try:
        upstream.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        upstream.server.server_close()


def _stop(signum, frame):
    raise KeyboardInterrupt
