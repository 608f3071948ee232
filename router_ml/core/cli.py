"""`router-ml route` and `router-ml migrate`, and the small helpers every layer's commands share.

A command maps options to library calls and prints what they return; the work lives in
the library, where a test and a Python user can call it.
"""

from __future__ import annotations

import json
from pathlib import Path

import click


def fail(message: str) -> None:
    """Stop a command with a one-line usage error (exit status 2)."""
    raise click.UsageError(message)


def echo_err(message: str) -> None:
    click.echo(message, err=True)


def decisions_table(prompts: list[str], decisions: list, version: str) -> str:
    """A short readable summary, one line per prompt, columns aligned to the longest model name."""
    width = max(len(d.model) for d in decisions)
    lines = [f"router {version}, quality_target {decisions[0].quality_target:g}"]
    for prompt, d in zip(prompts, decisions):
        lines.append(f"{d.model:>{width}s}  p={d.confidence:.2f}  ~${d.estimated_cost:.2g}  {' '.join(prompt.split())[:70]}")
    return "\n".join(lines) + "\n"


@click.command()
@click.option("--router", "router_path", required=True, help="Router directory or MLflow models:/ URI.")
@click.argument("prompt", required=False)
@click.option("--input", "input_path",
              help="Prompts to route: JSONL of {\"prompt\": ...}, or a CSV/Parquet file with a prompt column "
                   "(with --spark-master, also a Parquet folder).")
@click.option("--output", "output_path",
              help="JSONL to write the decisions to (with --input; with --spark-master, a new Parquet folder).")
@click.option("--quality-target", type=float, help="0 = cheapest, 1 = highest quality; default: the router's.")
@click.option("--format", "fmt", type=click.Choice(["json", "table"]), default="json", show_default=True,
              help="json: one decision object per line; table: a short readable summary.")
@click.option("--explain", is_flag=True,
              help="Also show every model's estimate and the nearest training prompts with their outcomes.")
@click.option("--spark-master", metavar="MASTER",
              help="Route --input on Spark (local[N], spark://..., yarn, sc:// for Spark Connect) into the Parquet folder --output; every row "
                   "keeps its columns and gains model, confidence, router_version and quality_target.")
def route(router_path, prompt, input_path, output_path, quality_target, fmt, explain, spark_master):
    """Route PROMPT (or every prompt of --input) and print the decision as JSON."""
    if (prompt is None) == (input_path is None):
        fail("give either a PROMPT or --input FILE.jsonl")
    if output_path and not input_path:
        fail("--output goes with --input")
    if spark_master:
        if not (input_path and output_path):
            fail("--spark-master routes --input into --output (a Parquet folder)")
        from router_ml.core.spark import route_to_parquet, spark_path

        if "://" not in spark_path(output_path) and Path(output_path).exists():
            fail(f"--output {output_path}: already exists; choose a new folder (nothing is overwritten)")

        route_to_parquet(spark_master, input_path, output_path, router_path, quality_target, log=echo_err)
        return
    input_path = Path(input_path) if input_path else None
    output_path = Path(output_path) if output_path else None
    if input_path and not input_path.exists():
        fail(f"--input {input_path}: no such file")
    if input_path and input_path.is_dir():
        fail(f"--input {input_path}: a folder needs --spark-master (or give a file)")
    from router_ml.core.router import load_router

    router = load_router(router_path)
    if prompt is not None:
        prompts = [prompt]
    else:
        from router_ml.core.tables import read_prompts  # pandas: only when reading a file

        prompts = read_prompts(input_path)["prompt"].tolist()
    if explain:
        if output_path:
            fail("--explain prints to the terminal; drop --output")
        for text in prompts:
            click.echo(f"prompt: {' '.join(text.split())[:100]!r}")
            click.echo(router.explain(text, quality_target).render() + "\n")
        return
    decisions = router.route_batch(prompts, quality_target)
    if fmt == "table":
        lines = decisions_table(prompts, decisions, router.version)
    else:
        lines = "".join(json.dumps(d.to_dict()) + "\n" for d in decisions)
    if output_path:
        from router_ml.core.files import atomic_write_text

        atomic_write_text(output_path, lines)
        echo_err(f"wrote {len(decisions)} decisions to {output_path}")
    else:
        click.echo(lines, nl=False)


@click.command()
@click.option("--router", "router_path", required=True, type=click.Path(path_type=Path),
              help="A router of an older format (2), whose manifest carries no digest.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Directory for the migrated router (the same as --router, with --overwrite, to migrate in place).")
@click.option("--overwrite", is_flag=True, help="Replace --out if it is a router.")
@click.option("--yes", is_flag=True, help="Vouch for the router without the question (after checking what it says).")
def migrate(router_path, out, overwrite, yes):
    """Rewrite a router of an older format in the current one, after you vouch for its manifest.

    A format-2 manifest carries no digest, so an edit to its prices, targets or models after
    training cannot be detected; this router-ml loads such a router only once migrated. The
    router's files are checked against its manifest and copied unchanged; the manifest gains
    a digest (and a `migrated` note), which guards it from then on. Check the models and
    prices printed first: migrating vouches for them.
    """
    from router_ml.core.artifact import check_output_dir, describe_for_migration, migrate_artifact, read_manifest

    echo_err(describe_for_migration(router_path))
    check_output_dir(out, overwrite)  # refuse before asking
    if not yes:
        click.confirm("Is this the router you trained, with these models and prices? Migrating vouches for it",
                      abort=True, err=True)
    path = migrate_artifact(router_path, out, overwrite=overwrite)
    manifest = read_manifest(path)
    echo_err(f"wrote {path}")
    click.echo(json.dumps({"path": str(path), "router_version": manifest["router_version"],
                           "from_format_version": manifest["migrated"]["from_format_version"],
                           "format_version": manifest["format_version"]}))
