"""The evaluations of a registered router version: MLflow runs, indexed by tags on the version.

Every measurement of a registered version on held-out prompts is an MLflow run (the
training run's held-out test, `router-ml evaluate`, `compare`, `promote --outcomes`,
`retrain`). The version carries an index of them, one group of tags per evaluation set:

    eval.<set>.prompts    how many prompts were measured
    eval.<set>.run        the run that measured them (its metrics and report are there)
    eval.<set>.kind       training | evaluation | comparison | promotion | retrain
    eval.<set>.source     the file the prompts came from
    eval.<set>.<metric>   aiq, gap_closed, cost_to_match_best, ... (6 significant digits)

<set> is the short fingerprint of the prompts measured and their outcomes
(`training.evaluate.evaluation.evaluation_set`), not of the file: the same file evaluated
again after dropping the prompts a router trained on is another set, with a group of its
own. A group is written whole, replacing any earlier group of the same set, so all its
tags come from one run and no tag mixes two sets. Versions evaluated on the same set can
be compared from their tags; `router-ml compare` measures them with intervals.

Groups written by router-ml before this scheme have no `.run` tag and were named by the
file's hash, not by the prompts measured: they are read back as `legacy` and never used to
decide a promotion.

Deliberately not here: logging runs (tracking.py: training and `router-ml evaluate`),
comparing or promoting (versions.py), decision runs (decisions.py).
"""

from __future__ import annotations

import math

EVAL_PREFIX = "eval."
FIELDS = ("prompts", "run", "kind", "source")  # the tags of a group that are not metrics
SOURCE_CHARS = 500  # a model version tag holds at most 5,000 characters


def eval_tag_prefix(set_id: str) -> str:
    return f"{EVAL_PREFIX}{set_id}."


def finite_metrics(metrics: dict) -> dict[str, float]:
    """The metrics of a report (or of a comparison) that are finite numbers."""
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def evaluation_tags(eval_set: dict, metrics: dict, run_id: str, kind: str) -> dict[str, str]:
    """The tags of one evaluation group (see the module docstring)."""
    prefix = eval_tag_prefix(eval_set["id"])
    tags = {prefix + "prompts": str(eval_set["prompts"]), prefix + "run": run_id, prefix + "kind": kind,
            prefix + "source": str(eval_set.get("source", ""))[:SOURCE_CHARS]}
    tags.update({prefix + key: f"{value:.6g}" for key, value in finite_metrics(metrics).items()})
    return tags


def record_evaluation(client, name: str, version: str, eval_set: dict, metrics: dict, run_id: str,
                      kind: str) -> dict[str, str]:
    """Index one evaluation on a registered version, replacing the group of the same set."""
    tags = evaluation_tags(eval_set, metrics, run_id, kind)
    prefix = eval_tag_prefix(eval_set["id"])
    existing = client.get_model_version(name, version).tags
    for key in existing:
        if key.startswith(prefix) and key not in tags:
            client.delete_model_version_tag(name, version, key)
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    return tags


def read_evaluations(tags: dict[str, str]) -> dict[str, dict]:
    """The evaluation groups of a version's tags: set id -> {prompts, run, kind, source, metrics, legacy}."""
    groups: dict[str, dict] = {}
    for key, value in tags.items():
        if not key.startswith(EVAL_PREFIX) or key.count(".") < 2:
            continue
        set_id, _, field = key[len(EVAL_PREFIX):].partition(".")
        group = groups.setdefault(set_id, {"set": set_id, "prompts": None, "run": None, "kind": None, "source": None,
                                           "metrics": {}})
        if field in FIELDS:
            group[field] = int(value) if field == "prompts" and value.isdigit() else value
        else:
            try:
                group["metrics"][field] = float(value)
            except ValueError:
                continue
    for group in groups.values():
        group["legacy"] = group["run"] is None
    return groups


def comparable_sets(tags_a: dict[str, str], tags_b: dict[str, str], metric: str) -> list[dict]:
    """Evaluation sets on which both versions were measured on `metric` by the current scheme,
    largest first: [{set, prompts, a, b, run_a, run_b, source}]."""
    a, b = read_evaluations(tags_a), read_evaluations(tags_b)
    shared = []
    for set_id in a.keys() & b.keys():
        ga, gb = a[set_id], b[set_id]
        if ga["legacy"] or gb["legacy"] or metric not in ga["metrics"] or metric not in gb["metrics"]:
            continue
        if ga["prompts"] != gb["prompts"]:
            continue  # one fingerprint, two sizes: not written by this scheme; never trust it
        shared.append({"set": set_id, "prompts": ga["prompts"], "a": ga["metrics"][metric], "b": gb["metrics"][metric],
                       "run_a": ga["run"], "run_b": gb["run"], "source": ga["source"]})
    return sorted(shared, key=lambda s: (-(s["prompts"] or 0), s["set"]))


def eval_set_params(eval_set: dict, prefix: str) -> dict[str, str]:
    """An evaluation set as MLflow run parameters: `<prefix>.sha256`, `.id`, `.prompts`, `.source`."""
    return {f"{prefix}.sha256": eval_set["sha256"], f"{prefix}.id": eval_set["id"],
            f"{prefix}.prompts": str(eval_set["prompts"]),
            f"{prefix}.source": str(eval_set.get("source", ""))[:SOURCE_CHARS]}
