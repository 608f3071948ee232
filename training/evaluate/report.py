"""Evaluation reports on disk: a folder with a Markdown summary, the plots and every number.

    summary.md       what a reader looks at first (tables link the plots)
    report.json      every number in the report
    curves.png, reliability.png, route_mix.png

`write_report` writes one router's report; `write_comparison` several routers' reports
on the same prompts, with their curves overlaid. Each file is written atomically.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from router_ml.core.files import atomic_write_text
from router_ml.training.evaluate import metrics, plots
from router_ml.training.evaluate.evaluation import comparison_rows, fmt, metrics_table


def to_json_text(obj) -> str:
    """JSON text with NaN and infinities as null, so any JSON reader accepts it."""
    def clean(value):
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(obj), indent=1, default=str, allow_nan=False) + "\n"


def summary_markdown(report: dict) -> str:
    d, b = report["default"], report["baselines"]
    lines = [
        f"# Evaluation of router {report['router_version']}",
        "",
        f"On {report['prompts']} prompts from `{report['source']}`{metrics.noisy_note(report['prompts'])}. "
        f"Skipped: {report['prompts_skipped_incomplete']} without every model's outcome, "
        f"{report.get('prompts_skipped_in_training', 0)} the router was trained on. "
        "Metric definitions: docs/metrics.md in the router-ml repository.",
        "",
        "## At the default target",
        "",
        "| | quality | cost per prompt (USD) |",
        "|---|---|---|",
        f"| router at quality_target {d['quality_target']:g} | {d['quality']:.4f} | {d['mean_cost']:.4g} |",
        f"| always cheapest ({b['always_cheapest']['model']}) | {b['always_cheapest']['quality']:.4f} | {b['always_cheapest']['mean_cost']:.4g} |",
        f"| always best ({b['always_best']['model']}) | {b['always_best']['quality']:.4f} | {b['always_best']['mean_cost']:.4g} |",
        f"| oracle | {b['oracle']['quality']:.4f} | {b['oracle']['mean_cost']:.4g} |",
        "",
        "Route mix: " + ", ".join(f"{m} {s:.1%}" for m, s in d["share"].items()) + ".",
        "",
        "## Cost–quality curves",
        "",
        metrics_table(comparison_rows(report), report.get("strong_model") is not None),
        "",
    ]
    if b.get("learned_skipped"):
        lines += [f"Learned baselines skipped: {b['learned_skipped']}.", ""]
    lines += ["![cost-quality curves](curves.png)", "", "## Calibration", "",
              f"Expected calibration error at the default target: {fmt(d['ece'], '.4f')}.", "",
              "![reliability](reliability.png)", "", "## Route mix", "", "![route mix](route_mix.png)", ""]
    if report.get("tasks"):
        lines += ["## Per task", "",
                  "| task | prompts | router quality | router cost | best model | its quality | its cost | oracle quality | AIQ | gap closed |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for task, t in report["tasks"].items():
            lines.append(
                f"| {task}{' (noisy)' if t['noisy'] else ''} | {t['prompts']} | {t['quality']:.4f} | {t['mean_cost']:.4g} | "
                f"{t['best_model']} | {t['best_model_quality']:.4f} | {t['best_model_cost']:.4g} | {t['oracle_quality']:.4f} | "
                f"{fmt(t.get('aiq'))} | {fmt(t.get('gap_closed'), '.3f')} |"
            )
        lines.append("")
    return "\n".join(lines)


def write_report(report: dict, out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots.plot_curves(report, out / "curves.png")
    plots.plot_reliability(report, out / "reliability.png")
    plots.plot_route_mix(report, out / "route_mix.png")
    atomic_write_text(out / "report.json", to_json_text(report))
    atomic_write_text(out / "summary.md", summary_markdown(report))
    return out


COMPARE_KEYS = ("aiq", "gap_closed", "cost_to_match_best", "quality_at_best_cost", "apgr", "cpt50", "cpt80", "ece")
COMPARE_EXTRA = ("default_quality_target", "default_quality", "default_mean_cost")


def comparison(reports: dict[str, dict]) -> dict:
    """Side-by-side numbers of several reports on the same prompts."""
    two = all(r.get("strong_model") for r in reports.values())
    keys = [k for k in COMPARE_KEYS if two or k not in ("apgr", "cpt50", "cpt80")]
    table = {}
    for label, report in reports.items():
        row = {k: report["metrics"].get(k) for k in keys}
        row.update(default_quality_target=report["default"]["quality_target"],
                   default_quality=report["default"]["quality"], default_mean_cost=report["default"]["mean_cost"])
        table[label] = row
    return {"prompts": next(iter(reports.values()))["prompts"], "metrics": list(keys) + list(COMPARE_EXTRA), "routers": table}


def comparison_text(summary: dict) -> str:
    labels = list(summary["routers"])
    lines = ["| metric | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for key in summary["metrics"]:
        spec = ".4g" if key == "default_mean_cost" else ".4f"
        lines.append(f"| {key} | " + " | ".join(fmt(summary["routers"][label][key], spec) for label in labels) + " |")
    return "\n".join(lines)


def differences_text(summary: dict) -> str:
    """The paired differences of a comparison summary as a Markdown table (empty without any)."""
    differences = summary.get("differences") or []
    if not differences:
        return ""
    confidence = differences[0]["confidence"]
    lines = [f"| metric | difference | {confidence:.0%} interval | verdict |", "|---|---|---|---|"]
    for d in differences:
        interval = (f"[{d['low']:+.4f}, {d['high']:+.4f}]" if d["low"] is not None and d["high"] is not None
                    and math.isfinite(d["low"]) and math.isfinite(d["high"]) else "n/a")
        value = "n/a" if d["difference"] is None or not math.isfinite(d["difference"]) else f"{d['difference']:+.4f}"
        lines.append(f"| {d['metric']} | {d['b']} - {d['a']}: {value} | {interval} | {d['verdict']} |")
    return "\n".join(lines)


def comparison_markdown(summary: dict) -> str:
    """compare.md: what was compared on which prompts, the side-by-side table, the differences
    with their intervals, the warning on a small set, the overlaid curves."""
    eval_set = summary.get("eval_set")
    title = f"# Router comparison on {summary['prompts']} prompts"
    lines = [title + (f" (evaluation set `{eval_set['id']}`)" if eval_set else ""), ""]
    if summary.get("warning"):
        lines += [f"**Warning:** {summary['warning']}.", ""]
    for label, ref in (summary.get("sources") or {}).items():
        registered = f", registered {ref['registered_model']} version {ref['version']}" if ref.get("version") else ""
        lines.append(f"- **{label}**: `{ref['source']}` (router {ref['router_version']}{registered})")
    if summary.get("sources"):
        lines.append("")
    lines += [comparison_text(summary), ""]
    if summary.get("differences"):
        lines += [f"Differences against {summary['reference']}: paired bootstrap over the same prompts "
                  f"({summary['resamples']} resamples); a difference is clear when its interval excludes 0.", "",
                  differences_text(summary), ""]
    lines += ["![curves](compare_curves.png)", ""]
    return "\n".join(lines)


def write_comparison(reports: dict[str, dict], out_dir: str | Path, summary: dict | None = None) -> tuple[Path, dict]:
    """The comparison folder: compare.md, compare.json (the summary and every report), the curves.
    `summary` (a `Comparison.summary()`) adds the evaluation set, sources and differences."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summary or comparison(reports)
    plots.plot_compare(reports, out / "compare_curves.png")
    atomic_write_text(out / "compare.json", to_json_text({**summary, "reports": reports}))
    atomic_write_text(out / "compare.md", comparison_markdown(summary))
    return out, summary
