"""Can partial int8 quantization pass the ONNX equivalence proof? (issue 4 follow-up)

    .venv/bin/python -m benchmarks.int8_partial [--workdir build/benchmarks] [--out benchmarks/results]

Starts from the fused fp32 ONNX export of the default embedder (router_ml.training.embed.onnx_export)
and quantizes it dynamically (int8, per-channel weights) with some node groups left in
fp32: the FFN output projections (whose inputs carry the largest activation outliers),
the attention blocks, both, or the last two layers. For each variant, on the first
2,000 LLMRouter training prompts embedded one at a time (as route() does): cosine to
torch's vectors (mean and 1st percentile), the share of routes at the default target
that match torch's with the LLMRouter router of benchmarks/quality.py, and the
single-prompt encode p50 over 300 mixed prompts (MMLU and LLMRouter). One process,
variants run in turn; timings on a shared 2-core machine are indicative only.
Writes results/int8_partial.md and results/int8_partial.json.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.datasets import prepare
from benchmarks.harness import benchmark_parser, write_results


def main(argv=None) -> int:
    args = benchmark_parser("int8_partial", __doc__).parse_args(argv)

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from benchmarks.policies import router_dir
    from router_ml import load_router
    from router_ml.core.embedders.onnx import OnnxEmbedder
    from router_ml.training.data.outcomes import read_outcomes
    from router_ml.training.embed.cache import DiskCachedEmbedder
    from router_ml.training.embed.onnx_export import export_onnx

    path, bench = router_dir(args.workdir, args.cache_dir)
    router = load_router(path)
    fp32 = Path(export_onnx(router.manifest["embedder"].get("model") or "all-MiniLM-L6-v2", args.cache_dir,
                            precision="fp32", log=print))
    names = [n.name for n in onnx.load(str(fp32 / "model.onnx")).graph.node if n.op_type in ("MatMul", "Attention")]
    ffn2 = [n for n in names if "/output/dense" in n and "attention" not in n]
    attention = [n for n in names if n.startswith("Attention")]
    last2 = [n for n in names if "layer.4" in n or "layer.5" in n or n in ("Attention_4", "Attention_5")]
    variants = {"fp32 (no quantization)": None, "int8, every MatMul and Attention": [],
                "int8, FFN output in fp32": ffn2, "int8, attention in fp32": attention,
                "int8, FFN output and attention in fp32": ffn2 + attention, "int8, last two layers in fp32": last2}

    prompts = read_outcomes(bench.train)["prompt"].drop_duplicates().tolist()[:2000]
    mmlu = read_outcomes(next(b for b in prepare(args.workdir) if b.name == "routellm-mmlu").train)
    timing = mmlu["prompt"].drop_duplicates().tolist()[:150] + prompts[:150]
    reference = DiskCachedEmbedder(router.embedder.embedder, args.cache_dir).encode(prompts)
    ref_choice = router.choose_indices(router.predict_scores(prompts, embeddings=reference))
    work = args.workdir / "int8-partial"
    rows = []
    for name, exclude in variants.items():
        d = work / str(len(rows))
        d.mkdir(parents=True, exist_ok=True)
        for f in ("embedder.json", "tokenizer.json"):
            shutil.copy(fp32 / f, d / f)
        if exclude is None:
            shutil.copy(fp32 / "model.onnx", d / "model.onnx")
        else:
            quantize_dynamic(str(fp32 / "model.onnx"), str(d / "model.onnx"), weight_type=QuantType.QInt8,
                             per_channel=True, op_types_to_quantize=["MatMul", "Attention"], nodes_to_exclude=exclude,
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        embedder = OnnxEmbedder(d, truncation=router.manifest["embedder"].get("truncation", "tail"))
        X = np.vstack([embedder.encode([p]) for p in prompts])
        cos = (X * reference).sum(1) / np.linalg.norm(X, axis=1) / np.linalg.norm(reference, axis=1)
        agree = float((router.choose_indices(router.predict_scores(prompts, embeddings=X)) == ref_choice).mean())
        for p in timing[:20]:
            embedder.encode([p])
        times = []
        for p in timing:
            t = time.perf_counter()
            embedder.encode([p])
            times.append(time.perf_counter() - t)
        rows.append({"variant": name, "fp32_nodes": len(exclude) if exclude is not None else len(names),
                     "cosine_mean": float(cos.mean()), "cosine_p1": float(np.percentile(cos, 1)),
                     "route_agreement": agree, "encode_p50_ms": 1000 * float(np.median(times))})
        print(rows[-1], flush=True)
    lines = ["# Partial int8 quantization against the equivalence proof (benchmarks/int8_partial.py)", "",
             f"{len(prompts)} LLMRouter training prompts, one at a time; routes of `{router.version}` at its default "
             f"target compared with torch's; encode p50 over {len(timing)} mixed prompts (one run, shared machine).", "",
             "| variant | ops left in fp32 (of 24) | cosine mean | cosine 1st pct | routes agree | encode p50 (ms) |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['variant']} | {r['fp32_nodes']} | {r['cosine_mean']:.4f} | {r['cosine_p1']:.4f} | "
              f"{r['route_agreement']:.1%} | {r['encode_p50_ms']:.1f} |" for r in rows]
    lines += ["", "The proof needs a 1st-percentile cosine >= 0.98 and >= 97 % of routes unchanged."]
    return write_results(args.out, "int8_partial", "\n".join(lines), {"rows": rows, "prompts": len(prompts)})


if __name__ == "__main__":
    sys.exit(main())
