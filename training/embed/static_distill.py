"""Distil a sentence-transformers model into the `static` backend (router_ml.core.embedders.static).

    files = distill_static("minilm", cache_dir)      # -> a directory with vectors.npz, tokenizer.json, embedder.json

model2vec's distillation (offline, from the model's local files: the packaged MiniLM by
default) runs every token of the vocabulary through the model once, reduces the vectors
to `pca_dims` dimensions with PCA and weights them by token frequency (SIF); about half
a minute for MiniLM on two cores, once per model and setting: the result is cached under
`~/.cache/router-ml/static/` by the source model's fingerprint and the settings.
Deliberately left out: model2vec's own runtime (`StaticModel`); serving reads the arrays
with numpy, so this module is the only one that imports model2vec.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np

from router_ml.core.embedders.files import DEFAULT_MODEL, model_fingerprint, resolve_model_path
from router_ml.core.embedders.static import CONFIG_FILE, TOKENIZER_FILE, VECTORS_FILE
from router_ml.core.files import sha256_file
from router_ml.errors import EmbedderError
from router_ml.training.embed.cache import default_cache_dir

PCA_DIMS = 256
SIF_COEFFICIENT = 1e-4


def distill_static(model: str = DEFAULT_MODEL, cache_dir: str | Path | None = None, pca_dims: int = PCA_DIMS,
                   log: Callable[[str], None] = print) -> Path:
    """Directory with the static backend's files for `model` (distilled once, then cached)."""
    try:
        version = metadata.version("model2vec")
    except metadata.PackageNotFoundError as exc:
        raise EmbedderError("the static embedder is distilled with model2vec: pip install model2vec skeletoken") from exc
    source = resolve_model_path(model)
    fingerprint = model_fingerprint(source)
    recipe = f"model2vec-{version}-pca{pca_dims}-sif{SIF_COEFFICIENT:g}"
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    target = root / "static" / f"{fingerprint[:16]}-{recipe}"
    if (target / CONFIG_FILE).exists():
        return target
    log(f"distilling {model} into a static embedder ({recipe}); once per model, cached in {target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".distill-", dir=target.parent))
    try:
        static = _distill(source, pca_dims)
        vectors = np.asarray(static.embedding, dtype=np.float16)
        with open(tmp / VECTORS_FILE, "wb") as fh:
            np.savez(fh, vectors=vectors)
        (tmp / TOKENIZER_FILE).write_text(static.tokenizer.to_str())
        config = {
            "recipe": recipe, "source_model": model, "source_fingerprint": fingerprint, "dim": int(vectors.shape[1]),
            "vocabulary": int(vectors.shape[0]), "normalize": bool(static.normalize),
            "unk_token_id": None if static.unk_token_id is None else int(static.unk_token_id),
            "vectors_sha256": sha256_file(tmp / VECTORS_FILE),
        }
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=1))
        try:
            tmp.rename(target)
        except OSError:  # another process finished the same distillation first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _distill(source: Path, pca_dims: int):
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    previous = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"  # model2vec shows a bar per token batch
    try:
        import transformers.utils.logging as hf_logging
        from model2vec.distill import distill

        hf_logging.disable_progress_bar()
        return distill(model_name=str(source), pca_dims=pca_dims, sif_coefficient=SIF_COEFFICIENT)
    except Exception as exc:
        raise EmbedderError(f"{source}: cannot distil a static embedder: {type(exc).__name__}: {exc}") from exc
    finally:
        if previous is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = previous
