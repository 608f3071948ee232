import json
import math
from dataclasses import replace

import numpy as np
import pytest

from router_ml.core.artifact import MANIFEST_FILE, read_estimator, read_manifest, write_artifact
from router_ml.core.manifest import (
    PACKAGING_KEYS,
    ConvertedFrom,
    EmbedderSection,
    Manifest,
    MetricsSection,
    json_safe,
)
from router_ml.errors import ArtifactFormatError


def content_of(manifest: dict) -> dict:
    """A written manifest without what packaging adds."""
    return {k: v for k, v in manifest.items() if k not in (*PACKAGING_KEYS, "manifest_sha256")}


def test_a_trained_routers_manifest_reads_back_as_written(trained_router_dir):
    written = read_manifest(trained_router_dir)
    manifest = Manifest.from_dict(written)
    assert manifest.to_dict() == content_of(written)
    assert list(manifest.to_dict()) == list(content_of(written))  # the same key order
    assert manifest.extra == {} and manifest.strategy.extra == {} and manifest.training_data.extra == {}
    assert manifest.embedder.id == written["embedder"]["id"] and manifest.embedder.settings["kind"] == "hashing"
    assert manifest.policy.default_quality_target == written["policy"]["default_quality_target"]
    assert manifest.verifier is not None and manifest.metrics.test is not None


def test_unknown_keys_and_nulls_survive_a_round_trip(trained_router_dir):
    """A manifest from another router-ml version keeps what this one has no field for."""
    written = content_of(read_manifest(trained_router_dir))
    written["future_section"] = {"a": [1, 2]}
    written["metrics"] = {**written["metrics"], "test": None, "other": 3}
    written["training_data"] = {**written["training_data"], "spark": None}
    written["embedder"] = {**written["embedder"], "equivalent_to": None, "new_setting": True}
    manifest = Manifest.from_dict(written)
    assert manifest.to_dict() == written
    assert manifest.metrics.test is None and manifest.extra == {"future_section": {"a": [1, 2]}}
    # a null read back, then set: the value wins
    filled = replace(manifest, metrics=replace(manifest.metrics, test={"prompts": 3}))
    assert filled.to_dict()["metrics"]["test"] == {"prompts": 3}
    assert Manifest.from_dict(filled.to_dict()).metrics.test == {"prompts": 3}


def test_a_manifest_is_validated_when_built(trained_router_dir):
    manifest = Manifest.from_dict(read_manifest(trained_router_dir))
    with pytest.raises(ArtifactFormatError, match=r"manifest of 'test-router-1': policy.cost_scale: expected a number"):
        replace(manifest, policy=replace(manifest.policy, cost_scale=-1.0))
    with pytest.raises(ArtifactFormatError, match="policy.default_quality_target: expected a number in"):
        replace(manifest, policy=replace(manifest.policy, default_quality_target=float("nan")))  # NaN is written as null
    with pytest.raises(ArtifactFormatError, match="models: expected distinct model names"):
        replace(manifest, models=["nano", "nano"])
    with pytest.raises(ArtifactFormatError, match="embedder.dim is missing"):
        replace(manifest, embedder=EmbedderSection(settings={"kind": "hashing"}, id="hashing:v1/256"))
    with pytest.raises(ArtifactFormatError, match=r"\['files'\] are written by packaging"):
        replace(manifest, extra={"files": {}})
    with pytest.raises(ArtifactFormatError, match=r"manifest: missing keys \['policy'\]"):
        Manifest.from_dict({k: v for k, v in read_manifest(trained_router_dir).items() if k != "policy"})
    with pytest.raises(ArtifactFormatError, match=r"manifest.strategy: missing keys \['candidates'\]"):
        data = read_manifest(trained_router_dir)
        Manifest.from_dict({**data, "strategy": {k: v for k, v in data["strategy"].items() if k != "candidates"}})


def test_values_stay_as_given_until_written(trained_router_dir, tmp_path):
    """numpy numbers and NaN are what training measured; the file holds their JSON."""
    manifest = Manifest.from_dict(read_manifest(trained_router_dir))
    validation = {**manifest.metrics.validation, "aiq": np.float64(0.5), "cost": float("nan"), "n": np.int64(3)}
    manifest = replace(manifest, router_version="numbers", metrics=MetricsSection(validation=validation),
                       converted_from=ConvertedFrom(source="elsewhere", router_version="v0"))
    assert math.isnan(manifest.to_dict()["metrics"]["validation"]["cost"])
    out = write_artifact(tmp_path / "r", manifest, read_estimator(trained_router_dir))
    written = json.loads((out / MANIFEST_FILE).read_text())
    assert written["metrics"]["validation"]["cost"] is None and written["metrics"]["validation"]["n"] == 3
    assert written["converted_from"] == {"source": "elsewhere", "router_version": "v0"}
    assert content_of(read_manifest(out)) == json_safe(manifest.to_dict())


def test_json_safe():
    value = {"a": (1, np.float32(0.5)), "b": [float("inf"), np.int64(2), np.bool_(True)], "c": "x", "d": None}
    assert json_safe(value) == {"a": [1, 0.5], "b": [None, 2, True], "c": "x", "d": None}
    assert type(json_safe(np.float64(1.0))) is float and type(json_safe(np.int32(1))) is int


def test_training_writes_what_its_result_describes(trained_router_dir):
    """The pipeline builds one Manifest: the file is its JSON (what TrainResult.manifest holds)."""
    written = read_manifest(trained_router_dir)
    assert list(content_of(written)) == ["router_version", "created_at", "embedder", "models", "cost_model",
                                         "success_threshold", "strategy", "policy", "training_data", "metrics",
                                         "config", "verifier"]
    assert list(written["strategy"]) == ["name", "params", "route_on_calibrated", "selected_by", "candidates", "choice"]
    assert list(written["policy"]) == ["schedule", "cost_scale", "default_quality_target", "default_rule"]
    assert list(written["training_data"]) == ["source", "sha256", "rows", "prompts", "train_prompts", "test_prompts",
                                              "labels"]
    assert list(written["metrics"]) == ["validation", "test"]
