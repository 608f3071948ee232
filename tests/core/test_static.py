"""The static embedder (router_ml.core.embedders.static), distilled from the packaged MiniLM:
same vectors as model2vec itself, batches equal to single prompts, serving without torch."""

import json
import subprocess
import sys

import numpy as np
import pytest

from router_ml import load_router
from router_ml.core.embedders.static import StaticEmbedder
from router_ml.errors import ArtifactIntegrityError, EmbedderError

pytestmark = pytest.mark.slow

TEXTS = ["What is 12 + 7?", "Translate into French: \"Where is the train station?\"", "qwxz",
         "Implement a lock-free multi-producer queue in Rust. " * 40, "", "[UNK] ☃ émigré naïve"]


@pytest.fixture(scope="module")
def distilled(tmp_path_factory):
    from router_ml.training.embed.static_distill import distill_static

    cache = tmp_path_factory.mktemp("static-cache")
    return distill_static("minilm", cache, log=lambda _: None)


def test_distillation_is_cached_and_described(distilled, tmp_path_factory):
    from router_ml.training.embed.static_distill import distill_static

    config = json.loads((distilled / "embedder.json").read_text())
    assert config["dim"] == 256 and config["source_model"] == "minilm" and len(config["source_fingerprint"]) == 64
    assert distill_static("minilm", distilled.parent.parent, log=lambda m: pytest.fail(m)) == distilled


def test_vectors_are_model2vecs_own(distilled):
    """The numpy encoder gives what model2vec's StaticModel gives on the same token vectors."""
    from model2vec import StaticModel
    from tokenizers import Tokenizer

    ours = StaticEmbedder(distilled, max_tokens=0)
    vectors = np.load(distilled / "vectors.npz")["vectors"]
    config = json.loads((distilled / "embedder.json").read_text())
    reference = StaticModel(vectors=vectors.astype(np.float32),
                            tokenizer=Tokenizer.from_file(str(distilled / "tokenizer.json")),
                            normalize=config["normalize"])
    texts = [t for t in TEXTS if t]
    np.testing.assert_allclose(ours.encode(texts), reference.encode(texts, max_length=None), atol=1e-5)


def test_batches_equal_single_prompts_and_truncation_is_shared(distilled):
    whole = StaticEmbedder(distilled, max_tokens=0)
    batch = whole.encode(TEXTS)
    single = np.stack([whole.encode([t])[0] for t in TEXTS])
    np.testing.assert_allclose(batch, single, atol=1e-6)
    assert np.allclose(np.linalg.norm(batch[[0, 1, 2, 3, 5]], axis=1), 1.0) and not batch[4].any()
    tail = StaticEmbedder(distilled, max_tokens=32, truncation="tail")
    [kept] = tail.truncate([TEXTS[3]])
    assert len(kept) < len(TEXTS[3]) and TEXTS[3].rstrip().endswith(kept.strip()[-40:])
    assert tail.id != whole.id and tail.model_id == whole.model_id


def test_a_static_router_serves_with_numpy_and_tokenizers_only(demo_files, distilled, tmp_path):
    from router_ml.training.fit.pipeline import TrainConfig, train

    out = tmp_path / "static-router"
    train(TrainConfig(outcomes=str(demo_files["outcomes"]), catalog=str(demo_files["catalog"]), out=str(out),
                      embedder_kind="static", folds=3, mlflow=False, baselines=(),
                      cache_dir=str(distilled.parent.parent), router_version="static-1"),
          log=lambda _: None, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["embedder"]["kind"] == "static" and manifest["embedder"]["max_tokens"] == 0
    assert {"embedder/vectors.npz", "embedder/tokenizer.json", "embedder/embedder.json"} <= set(manifest["files"])
    code = ("import sys, json, router_ml; "
            f"r = router_ml.load_router({str(out)!r}); d = r.route('What is 12 + 7?'); "
            "print(json.dumps({'model': d.model, 'heavy': [m for m in ('torch', 'sklearn', 'scipy', 'transformers', "
            "'onnxruntime', 'model2vec') if m in sys.modules]}))")
    result = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                       check=True).stdout)
    assert result["heavy"] == [] and result["model"] == load_router(out).route("What is 12 + 7?").model
    with open(out / "embedder" / "vectors.npz", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ArtifactIntegrityError, match="vectors.npz"):
        load_router(out)


def test_missing_files_and_bad_settings_are_named(tmp_path, distilled):
    with pytest.raises(EmbedderError, match="missing"):
        StaticEmbedder(tmp_path)
    with pytest.raises(EmbedderError, match="max_tokens"):
        StaticEmbedder(distilled, max_tokens=-1)
