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


def decisions_table(prompts: list[str], decisions: list, version: str, labels: list[str] | None = None) -> str:
    """A short readable summary, one line per prompt: where it came from (`labels`: its line or row
    and id, with --input), the model (aligned to the longest name), its estimated success and
    cost, the target when rows have their own, and the start of the prompt."""
    width = max(len(d.model) for d in decisions)
    label_width = max(map(len, labels)) if labels else 0
    per_row = len({d.quality_target for d in decisions}) > 1
    target = "quality_target per row" if per_row else f"quality_target {decisions[0].quality_target:g}"
    lines = [f"router {version}, {target}"]
    for i, (prompt, d) in enumerate(zip(prompts, decisions)):
        columns = [labels[i].ljust(label_width)] if labels else []
        columns += [f"{d.model:>{width}s}", f"p={d.confidence:.2f}", f"~${d.estimated_cost:<8.2g}"]
        if per_row:
            columns.append(f"target={d.quality_target:<4g}")
        columns.append(" ".join(prompt.split())[:70])
        lines.append("  ".join(columns))
    return "\n".join(lines) + "\n"


@click.command()
@click.option("--router", "router_path", required=True, help="Router directory or MLflow models:/ URI.")
@click.argument("prompt", required=False)
@click.option("--input", "input_path",
              help="Prompts to route: JSONL of {\"prompt\": ...}, or a CSV/Parquet file with a prompt column "
                   "(with --spark-master, also a Parquet folder). Optional columns: prompt_id (written with each "
                   "decision) and quality_target (the row's own target). Every row is routed: a blank or "
                   "contentless row is an error naming its line or row.")
@click.option("--output", "output_path",
              help="JSONL to write the decisions to (with --input; with --spark-master, a new Parquet folder).")
@click.option("--quality-target", type=float,
              help="0 = cheapest, 1 = highest quality; default: the router's. With --input, for rows without "
                   "their own quality_target.")
@click.option("--format", "fmt", type=click.Choice(["json", "table"]), default="json", show_default=True,
              help="json: one decision object per line (with --input, led by the input's line (JSON Lines) or row "
                   "(CSV, Parquet; 1-based, header excluded) and its prompt_id); table: a short readable summary.")
@click.option("--with-prompt", is_flag=True,
              help="Also write each prompt's text in its JSON decision (left out by default: prompts may be large "
                   "or private).")
@click.option("--explain", is_flag=True,
              help="Also show every model's estimate and the nearest training prompts with their outcomes.")
@click.option("--spark-master", metavar="MASTER",
              help="Route --input on Spark (local[N], spark://..., yarn, sc:// for Spark Connect) into the Parquet folder --output; every row "
                   "keeps its columns and gains model, confidence, router_version and quality_target.")
def route(router_path, prompt, input_path, output_path, quality_target, fmt, with_prompt, explain, spark_master):
    """Route PROMPT (or every prompt of --input) and print the decision as JSON."""
    if (prompt is None) == (input_path is None):
        fail("give either a PROMPT or --input FILE.jsonl")
    if output_path and not input_path:
        fail("--output goes with --input")
    if spark_master:
        _route_on_spark(spark_master, input_path, output_path, router_path, quality_target)
        return
    if explain and output_path:
        fail("--explain prints to the terminal; drop --output")
    prompts = _read_input(Path(input_path)) if input_path else None  # before loading the router: fail fast
    from router_ml.core.router import load_router

    router = load_router(router_path)
    if explain:
        _explain(router, prompt, prompts, quality_target)
        return
    if prompts is None:
        decisions = router.route_batch([prompt], quality_target)
        texts, labels = [prompt], None
        records = [({"prompt": prompt} if with_prompt else {}) | decisions[0].to_dict()]
    else:
        from router_ml.core.prompt_file import route_prompt_file

        decisions = route_prompt_file(router, prompts, quality_target)
        texts, labels, records = prompts.prompts, prompts.labels(), prompts.records(decisions, with_prompt)
    if fmt == "table":
        lines = decisions_table(texts, decisions, router.version, labels)
    else:
        lines = "".join(json.dumps(r) + "\n" for r in records)
    _write(lines, Path(output_path) if output_path else None, len(decisions))


def _route_on_spark(master: str, input_path, output_path, router_path, quality_target) -> None:
    if not (input_path and output_path):
        fail("--spark-master routes --input into --output (a Parquet folder)")
    from router_ml.core.spark import route_to_parquet, spark_path

    if "://" not in spark_path(output_path) and Path(output_path).exists():
        fail(f"--output {output_path}: already exists; choose a new folder (nothing is overwritten)")
    route_to_parquet(master, input_path, output_path, router_path, quality_target, log=echo_err)


def _read_input(path: Path):
    if not path.exists():
        fail(f"--input {path}: no such file")
    if path.is_dir():
        fail(f"--input {path}: a folder needs --spark-master (or give a file)")
    from router_ml.core.prompt_file import read_prompt_file  # pandas: only when reading a file

    return read_prompt_file(path)


def _explain(router, prompt: str | None, prompts, quality_target: float | None) -> None:
    """--explain: each prompt's decision and why (rows of --input at their own targets)."""
    if prompts is None:
        rows = [("", prompt, quality_target)]
    else:
        rows = [(f"{label}: ", text, quality_target if target is None else target)
                for label, text, target in zip(prompts.labels(), prompts.prompts, prompts.targets)]
    for label, text, target in rows:
        click.echo(f"{label}prompt: {' '.join(text.split())[:100]!r}")
        click.echo(router.explain(text, target).render() + "\n")


def _write(lines: str, output_path: Path | None, count: int) -> None:
    if output_path is None:
        click.echo(lines, nl=False)
        return
    from router_ml.core.files import atomic_write_text

    atomic_write_text(output_path, lines)
    echo_err(f"wrote {count} decisions to {output_path}")


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
