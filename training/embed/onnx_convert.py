"""Convert a trained router to the ONNX backend, proving on real prompts that it routes the same.

A router must serve with the embedder it was trained with, or with one proven
equivalent. `convert_router` exports the router's sentence-transformers model to ONNX
(router_ml.training.embed.onnx_export), embeds a sample of prompts both ways, and writes a new artifact
(same head, ONNX embedder, version `<version>+onnx-<precision>`) only if the vectors
agree (cosine at the 1st percentile >= `min_cosine`) and the routes agree at the default
target on at least `min_agreement` of the prompts.

With `precision="auto"` it tries int8 first (fastest) and falls back to fp32 when int8
fails the proof. That happens on many-model routers: on LLMRouter's nine models,
int8's small perturbations (cosine 0.993) flip about 9 % of routes between near-equal
choices, while fp32 agrees on every route. The measurements of every attempt are stored
in the manifest (`embedder.equivalent_to`); `force` writes the artifact anyway and says
so there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from router_ml.core.artifact import read_estimator, write_artifact
from router_ml.core.decision import choose
from router_ml.core.manifest import ConvertedFrom, EmbedderSection, Manifest
from router_ml.core.router import load_router
from router_ml.errors import ConfigError, EmbedderMismatchError

PROOF_PROMPTS = 2000


def embedding_agreement(router, other_embedder, prompts: list[str], ours: np.ndarray | None = None) -> dict:
    """Cosine of the two embedders' vectors and agreement of the routes at the default target."""
    ours = router.embedder.encode(prompts) if ours is None else ours
    theirs = other_embedder.encode(prompts)
    cosine = (ours * theirs).sum(axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))
    costs = router.cost_model.estimate(np.array([len(p) for p in prompts]))
    lam = router.schedule.lam_for(router.default_quality_target)
    route_a = choose(router.head.predict(ours)[0], costs, lam, router.cost_scale)
    route_b = choose(router.head.predict(theirs)[0], costs, lam, router.cost_scale)
    return {
        "prompts": len(prompts),
        "mean_cosine": float(cosine.mean()),
        "p1_cosine": float(np.percentile(cosine, 1)),
        "min_cosine": float(cosine.min()),
        "route_agreement": float((route_a == route_b).mean()),
    }


def convert_router(
    source: str,
    out: str | Path,
    prompts: list[str] | None = None,
    *,
    precision: str = "auto",
    min_cosine: float = 0.98,
    min_agreement: float = 0.97,
    force: bool = False,
    overwrite: bool = False,
    cache_dir: str | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    from router_ml.core.embedders.onnx import OnnxEmbedder
    from router_ml.training.embed.onnx_export import PRECISIONS, export_onnx
    from router_ml.training.evaluate.evaluation import training_side

    router = load_router(source, decision_cache_size=0)
    spec = router.manifest["embedder"]
    if spec["kind"] != "sentence-transformers":
        raise ConfigError(f"{source}: convert takes a router with a sentence-transformers embedder (torch), "
                          f"this one has {spec['kind']!r}")
    if precision not in ("auto", *PRECISIONS):
        raise ConfigError(f"precision: expected auto or one of {PRECISIONS}, found {precision!r}")
    if prompts is None:
        side = training_side(router, log=log)
        if side is None:
            raise ConfigError(f"{source}: its training prompts are not available to prove the conversion on; "
                              "pass --outcomes FILE with prompts like the ones it will route")
        prompts = side.prompts
    if len(prompts) > PROOF_PROMPTS:
        pick = np.random.default_rng(0).choice(len(prompts), PROOF_PROMPTS, replace=False)
        prompts = [prompts[i] for i in sorted(pick)]
    log(f"embedding {len(prompts)} prompts with the router's torch embedder")
    ours = router.embedder.encode(prompts)
    attempts = []
    for choice in (PRECISIONS if precision == "auto" else (precision,)):
        onnx = OnnxEmbedder(export_onnx(spec["model"], cache_dir, precision=choice, log=log), truncation=spec["truncation"])
        if onnx.config["source_fingerprint"] != spec["fingerprint"]:
            raise EmbedderMismatchError(f"the exported model comes from files {onnx.config['source_fingerprint'][:16]}, "
                                        f"the router was trained with {spec['fingerprint'][:16]}")
        proof = embedding_agreement(router, onnx, prompts, ours)
        passed = proof["p1_cosine"] >= min_cosine and proof["route_agreement"] >= min_agreement
        summary = (f"{choice}: cosine mean {proof['mean_cosine']:.4f}, 1st percentile {proof['p1_cosine']:.4f}; "
                   f"routes agree on {proof['route_agreement']:.1%} of {proof['prompts']} prompts at the default target")
        log(summary)
        attempts.append({"precision": choice, **proof, "passed": passed})
        if passed:
            break
    if not passed and not force:
        raise ConfigError(f"not converted: {'; '.join(_describe(a) for a in attempts)} (needs cosine >= {min_cosine} "
                          f"and agreement >= {min_agreement}); pass --force to write it anyway")
    original = Manifest.from_dict(router.manifest, f"{source}/manifest.json")
    manifest = replace(
        original,
        router_version=f"{router.version}+onnx-{attempts[-1]['precision']}",
        embedder=EmbedderSection.of(onnx, equivalent_to={
            "id": spec["id"], **proof, "thresholds": {"p1_cosine": min_cosine, "route_agreement": min_agreement},
            "passed": passed, "forced": not passed, "attempts": attempts}),
        converted_from=ConvertedFrom(source=str(source), router_version=router.version),
        metrics=replace(original.metrics, measured_with_embedder=spec["id"]),
    )
    path = write_artifact(out, manifest, read_estimator(router.path), overwrite=overwrite, embedder_files=onnx.files())
    log(f"wrote {path}: {summary}")
    return {"path": str(path), "router_version": manifest.router_version, "precision": attempts[-1]["precision"],
            **proof, "passed": passed, "attempts": attempts}


def _describe(attempt: dict) -> str:
    return (f"{attempt['precision']}: cosine 1st percentile {attempt['p1_cosine']:.4f}, "
            f"routes agree {attempt['route_agreement']:.1%}")
