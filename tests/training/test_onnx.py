"""The ONNX backend: export, parity with torch, torch-free serving, conversion with proof."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from router_ml import load_router
from router_ml.core.embedders.onnx import OnnxEmbedder
from router_ml.errors import ArtifactIntegrityError, ConfigError

pytestmark = pytest.mark.slow

LONG = "Here is an example. " * 120 + "Now the real question: what is the capital of Peru?"


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def exported(onnx_cache):
    from router_ml.training.embed.onnx_export import export_onnx

    return {p: export_onnx(cache_dir=onnx_cache, precision=p, log=lambda _: None) for p in ("int8", "fp32")}


@pytest.fixture(scope="module")
def torch_embedder():
    from router_ml.core.embedders.sentence_transformer import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(truncation="tail")


def test_export_is_cached_and_described(exported, onnx_cache):
    from router_ml.training.embed.onnx_export import export_onnx

    assert export_onnx(cache_dir=onnx_cache, precision="int8", log=lambda _: None) == exported["int8"]
    config = json.loads((exported["int8"] / "embedder.json").read_text())
    assert config["pooling"] == "mean" and config["normalize"] and config["max_tokens"] == 256 and config["dim"] == 384
    assert config["precision"] == "int8"
    assert (exported["int8"] / "model.onnx").stat().st_size < (exported["fp32"] / "model.onnx").stat().st_size


def test_vectors_match_torch(exported, torch_embedder, demo_files):
    import pandas as pd

    prompts = pd.read_csv(demo_files["holdout"])["prompt"].drop_duplicates().tolist()[:120] + [LONG]
    reference = torch_embedder.encode(prompts)
    for precision, floor in (("int8", 0.97), ("fp32", 0.9999)):
        got = OnnxEmbedder(exported[precision], truncation="tail").encode(prompts)
        cosine = (got * reference).sum(axis=1)
        assert cosine.min() >= floor, (precision, cosine.min())
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("truncation", ["head", "tail", "head_tail"])
def test_truncation_cuts_the_same_text(exported, truncation):
    from router_ml.core.embedders.sentence_transformer import SentenceTransformerEmbedder

    torch_side = SentenceTransformerEmbedder(truncation=truncation).truncate([LONG])[0]
    onnx_side = OnnxEmbedder(exported["fp32"], truncation=truncation).truncate([LONG])[0]
    assert torch_side == onnx_side
    assert ("capital of Peru" in onnx_side) == (truncation != "head")


def test_single_and_batched_embeddings_agree(exported):
    texts = ["short one", "a somewhat longer prompt about routing language models", LONG]
    fp32 = OnnxEmbedder(exported["fp32"], truncation="tail")
    np.testing.assert_allclose(fp32.encode(texts), np.vstack([fp32.encode([t]) for t in texts]), atol=1e-4)
    # int8 quantizes activations with one scale per batch tensor, so a prompt's vector moves
    # slightly with its batch-mates (documented in router_ml/onnx_embedder.py).
    int8 = OnnxEmbedder(exported["int8"], truncation="tail")
    batched, single = int8.encode(texts), np.vstack([int8.encode([t]) for t in texts])
    assert (batched * single).sum(axis=1).min() >= 0.98


@pytest.fixture(scope="module")
def onnx_router(tmp_path_factory, demo_files, onnx_cache):
    from router_ml.training.fit.pipeline import TrainConfig, train

    out = tmp_path_factory.mktemp("onnx-router") / "r"
    train(TrainConfig(outcomes=str(demo_files["outcomes"]), catalog=str(demo_files["catalog"]), out=str(out),
                      backend="onnx", folds=3, mlflow=False, baselines=(), cache_dir=str(onnx_cache),
                      router_version="onnx-native"), log=lambda _: None, progress=False)
    return out


def test_onnx_router_serves_without_torch_or_sklearn(onnx_router):
    manifest = json.loads((onnx_router / "manifest.json").read_text())
    assert manifest["embedder"]["kind"] == "onnx" and manifest["embedder"]["precision"] == "fp32"  # the default: it routes as torch does
    assert {"embedder/model.onnx", "embedder/tokenizer.json", "embedder/embedder.json"} <= set(manifest["files"])
    code = (
        "import sys, json, router_ml; "
        f"r = router_ml.load_router({str(onnx_router)!r}); d = r.route('What is 12 + 7?'); "
        "print(json.dumps({'model': d.model, 'heavy': [m for m in ('torch', 'sklearn', 'scipy', 'transformers') "
        "if m in sys.modules]}))"
    )
    out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert out["heavy"] == []
    assert out["model"] == load_router(onnx_router).route("What is 12 + 7?").model


def test_tampered_onnx_model_is_refused(onnx_router, tmp_path):
    copy = tmp_path / "r"
    shutil.copytree(onnx_router, copy)
    with open(copy / "embedder" / "model.onnx", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ArtifactIntegrityError, match="model.onnx"):
        load_router(copy)


@pytest.fixture(scope="module")
def torch_router(tmp_path_factory, demo_files, onnx_cache):
    from router_ml.training.fit.pipeline import TrainConfig, train

    out = tmp_path_factory.mktemp("torch-router") / "r"
    train(TrainConfig(outcomes=str(demo_files["outcomes"]), catalog=str(demo_files["catalog"]), out=str(out),
                      strategy="per_model", folds=3, mlflow=False, baselines=(), cache_dir=str(onnx_cache),
                      router_version="torch-1"), log=lambda _: None, progress=False)
    return out


def test_convert_proves_equivalence_and_records_it(torch_router, tmp_path, onnx_cache):
    from router_ml.training.embed.onnx_convert import convert_router

    result = convert_router(str(torch_router), tmp_path / "converted", cache_dir=str(onnx_cache), log=lambda _: None)
    manifest = json.loads((tmp_path / "converted" / "manifest.json").read_text())
    proof = manifest["embedder"]["equivalent_to"]
    assert proof["passed"] and not proof["forced"] and proof["id"].startswith("sentence-transformers@")
    assert proof["p1_cosine"] >= 0.98 and proof["route_agreement"] >= 0.97
    assert manifest["router_version"] == f"torch-1+onnx-{result['precision']}"
    converted, original = load_router(tmp_path / "converted"), load_router(torch_router)
    prompts = ["What is 12 + 7?", "Implement a B-tree with deletion and rebalancing in Rust."]
    assert [d.model for d in converted.route_batch(prompts)] == [d.model for d in original.route_batch(prompts)]


def test_convert_refuses_failed_proofs_unless_forced(torch_router, tmp_path, onnx_cache):
    from router_ml.training.embed.onnx_convert import convert_router

    with pytest.raises(ConfigError, match="not converted"):
        convert_router(str(torch_router), tmp_path / "c", precision="int8", min_agreement=1.01,
                       cache_dir=str(onnx_cache), log=lambda _: None)
    assert not (tmp_path / "c").exists()
    result = convert_router(str(torch_router), tmp_path / "c", precision="int8", min_agreement=1.01, force=True,
                            cache_dir=str(onnx_cache), log=lambda _: None)
    assert json.loads((tmp_path / "c" / "manifest.json").read_text())["embedder"]["equivalent_to"]["forced"] is True
    assert result["passed"] is False


def test_convert_refuses_a_router_without_a_torch_embedder(trained_router_dir, tmp_path):
    from router_ml.training.embed.onnx_convert import convert_router

    with pytest.raises(ConfigError, match="sentence-transformers embedder"):
        convert_router(str(trained_router_dir), tmp_path / "c", log=lambda _: None)
