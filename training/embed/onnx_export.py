"""Export a sentence-transformers model to the ONNX backend (router_ml.core.embedders.onnx).

Offline, from the installed model files, in three steps:

1. `torch.onnx.export` of the transformer (eager attention, so step 2 can recognise it),
   with dynamic batch and sequence axes;
2. onnxruntime's transformer optimizer fuses BERT attention, the embedding layer norm,
   skip layer norms and GELU (BERT-family models; others skip fusion);
3. precision "int8": dynamic int8 quantization of the MatMul and Attention weights,
   **per channel** (per-tensor scales lost accuracy in an early trial; per-channel keeps
   the vectors' cosine to torch's at 0.993 on average on the real prompts); precision
   "fp32" stops after step 2 (vectors equal to torch's up to float rounding).

The result is cached under `<cache>/onnx/<source fingerprint>-<recipe>/` (the
embedding cache's directory), keyed by the source model's hash, so it is exported once
per model. A check against the torch model on a few sentences rejects a broken export.
Only models whose sentence-transformers pipeline is Transformer -> Pooling
(-> Normalize) are supported; others fail with a clear error.
"""

from __future__ import annotations

import inspect
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from router_ml.core.embedders.files import DEFAULT_MODEL, model_fingerprint, resolve_model_path
from router_ml.core.embedders.onnx import CONFIG_FILE, MODEL_FILE, TOKENIZER_FILE
from router_ml.core.files import sha256_file
from router_ml.errors import EmbedderError
from router_ml.training.embed.cache import default_cache_dir

RECIPES = {"int8": "fused-int8-dynamic-per-channel-v1", "fp32": "fused-fp32-v1"}
PRECISIONS = tuple(RECIPES)
OPSET = 17
_SANITY = ["What is the capital of France?", "Implement a lock-free queue in Rust with unit tests.",
           "Translate into Basque: the tenant remains liable for damages caused by negligence."]
_FUSABLE = {"bert", "roberta", "distilbert", "mpnet", "xlm-roberta", "electra"}


def _pipeline_settings(path: Path) -> dict:
    """Pooling and normalisation from the model's sentence-transformers config files."""
    modules = json.loads((path / "modules.json").read_text()) if (path / "modules.json").exists() else []
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    supported = {"Transformer", "Pooling", "Normalize"}
    if any(k not in supported for k in kinds):
        raise EmbedderError(f"{path}: modules {kinds} include layers the ONNX backend does not run; use --backend torch")
    pooling_dir = next((path / m["path"] for m in modules if m.get("type", "").endswith("Pooling")), None)
    mode = "mean"
    if pooling_dir and (pooling_dir / "config.json").exists():
        config = json.loads((pooling_dir / "config.json").read_text())
        if config.get("pooling_mode_cls_token"):
            mode = "cls"
        elif config.get("pooling_mode_max_tokens"):
            mode = "max"
        elif not config.get("pooling_mode_mean_tokens", True):
            raise EmbedderError(f"{pooling_dir}: pooling {config} is not supported by the ONNX backend")
    max_tokens = 512
    if (path / "sentence_bert_config.json").exists():
        max_tokens = int(json.loads((path / "sentence_bert_config.json").read_text()).get("max_seq_length", 512))
    return {"pooling": mode, "normalize": "Normalize" in kinds, "max_tokens": max_tokens}


def export_onnx(model: str = DEFAULT_MODEL, cache_dir: str | Path | None = None, precision: str = "int8",
                log: Callable[[str], None] = print) -> Path:
    """Directory with model.onnx, tokenizer.json and embedder.json for `model` (cached)."""
    if precision not in RECIPES:
        raise EmbedderError(f"ONNX precision: expected one of {PRECISIONS}, found {precision!r}")
    recipe = RECIPES[precision]
    source = resolve_model_path(model)
    fingerprint = model_fingerprint(source)
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    target = root / "onnx" / f"{fingerprint[:16]}-{recipe}"
    if (target / CONFIG_FILE).exists():
        return target
    settings = _pipeline_settings(source)
    log(f"exporting {model} to ONNX ({recipe}); once per model, cached in {target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        inputs = _export_fp32(source, tmp / "fp32.onnx")
        fused = _fuse(source, tmp / "fp32.onnx", tmp / "fused.onnx")
        if precision == "int8":
            _quantize(fused, tmp / MODEL_FILE)
        else:
            shutil.copyfile(fused, tmp / MODEL_FILE)
        (tmp / "fp32.onnx").unlink()
        if fused != tmp / "fp32.onnx":
            fused.unlink()
        for leftover in tmp.glob("*.data"):
            leftover.unlink()
        _copy_tokenizer(source, tmp / TOKENIZER_FILE)
        config = {
            "recipe": recipe, "precision": precision, "source_model": model, "source_fingerprint": fingerprint, "inputs": inputs,
            "dim": None, "pad_id": _pad_id(source), "onnx_sha256": sha256_file(tmp / MODEL_FILE), **settings,
        }
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=1))
        config["dim"] = _check_against_torch(source, tmp, settings)
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=1))
        try:
            tmp.rename(target)
        except OSError:  # another process finished the same export first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _export_fp32(source: Path, out: Path) -> list[str]:
    import torch
    from transformers import AutoModel, AutoTokenizer

    try:
        model = AutoModel.from_pretrained(str(source), attn_implementation="eager").eval()
    except Exception as exc:
        raise EmbedderError(f"{source}: cannot load the transformer for export: {exc}") from exc
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids")
             if n in inspect.signature(model.forward).parameters]
    sample = tokenizer(_SANITY, padding=True, return_tensors="pt")
    args = tuple(sample[n] if n in sample else torch.zeros_like(sample["input_ids"]) for n in names)

    class Encoder(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *tensors):
            return self.inner(**dict(zip(names, tensors))).last_hidden_state

    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes["last_hidden_state"] = {0: "batch", 1: "sequence"}
    with torch.inference_mode():
        torch.onnx.export(Encoder(model), args, str(out), input_names=names, output_names=["last_hidden_state"],
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    return names


def _fuse(source: Path, fp32: Path, out: Path) -> Path:
    config = json.loads((source / "config.json").read_text())
    model_type = config.get("model_type", "")
    if model_type not in _FUSABLE:
        return fp32
    from onnxruntime.transformers import optimizer

    fused = optimizer.optimize_model(str(fp32), model_type="bert" if model_type != "distilbert" else "bert",
                                     num_heads=int(config["num_attention_heads"]), hidden_size=int(config["hidden_size"]),
                                     opt_level=1)
    fused.save_model_to_file(str(out))
    return out


def _quantize(model: Path, out: Path) -> None:
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # the quantizer suggests pre-processing on the root logger
    quantize_dynamic(str(model), str(out), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul", "Attention"],
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def _copy_tokenizer(source: Path, out: Path) -> None:
    if (source / TOKENIZER_FILE).exists():
        shutil.copyfile(source / TOKENIZER_FILE, out)
        return
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        AutoTokenizer.from_pretrained(str(source)).save_pretrained(tmp)
        if not (Path(tmp) / TOKENIZER_FILE).exists():
            raise EmbedderError(f"{source}: the model has no fast tokenizer; the ONNX backend needs tokenizer.json")
        shutil.copyfile(Path(tmp) / TOKENIZER_FILE, out)


def _pad_id(source: Path) -> int:
    config = json.loads((source / "config.json").read_text())
    return int(config.get("pad_token_id") or 0)


def _check_against_torch(source: Path, files: Path, settings: dict) -> int:
    """Embed a few sentences both ways; a broken export is refused here, not found in production."""
    from sentence_transformers import SentenceTransformer

    from router_ml.core.embedders.onnx import OnnxEmbedder

    reference = SentenceTransformer(str(source), device="cpu").encode(_SANITY, normalize_embeddings=settings["normalize"])
    config = json.loads((files / CONFIG_FILE).read_text())
    config["dim"] = int(reference.shape[1])
    (files / CONFIG_FILE).write_text(json.dumps(config))
    got = OnnxEmbedder(files, truncation="head").encode_prepared(_SANITY)
    cosine = (got * reference).sum(axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(reference, axis=1))
    if cosine.min() < 0.95:
        raise EmbedderError(f"{source}: the ONNX export disagrees with the torch model (cosine {cosine.min():.3f}); "
                            "use --backend torch")
    return int(reference.shape[1])
