import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from router_ml import load_router
from router_ml.core.artifact import (
    HEAD_ARRAYS_FILE,
    HEAD_FILE,
    MANIFEST_FILE,
    read_manifest,
    write_artifact,
)
from router_ml.core.files import atomic_write_text
from router_ml.core.heads import HEADS
from router_ml.errors import ArtifactExistsError, ArtifactFormatError, ArtifactIntegrityError, EmbedderMismatchError


def copy(src, tmp_path, name="copy"):
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


def edit_manifest(path, change, redigest=True):
    """Change the manifest; `redigest` also updates its digest, as a deliberate repackaging would."""
    from router_ml.core.artifact import MANIFEST_DIGEST_KEY, manifest_digest

    manifest = json.loads((path / MANIFEST_FILE).read_text())
    change(manifest)
    if redigest:
        manifest[MANIFEST_DIGEST_KEY] = manifest_digest(manifest)
    (path / MANIFEST_FILE).write_text(json.dumps(manifest))


def test_manifest_records_versions_hashes_and_training_data(trained_router_dir):
    manifest = read_manifest(trained_router_dir)
    assert manifest["format_version"] == 3 and len(manifest["manifest_sha256"]) == 64
    assert manifest["router_version"] == "test-router-1"
    assert manifest["embedder"]["id"].startswith("hashing") and manifest["embedder"]["dim"] == 256
    assert [m["name"] for m in manifest["cost_model"]["models"]] == manifest["models"]
    assert manifest["strategy"]["name"] in HEADS
    assert manifest["strategy"]["route_on_calibrated"] is True  # one probability space
    # Every default candidate (the demo is small enough for the MLP), then the averages of the best few.
    names = [row["candidate"] for row in manifest["strategy"]["candidates"]]
    assert {"per_model(C=1.0)", "knn(k=25)", "sw()", "mlp()", "blend(C=0.1,k=50)"} <= set(names)
    assert len(names) >= 14 and all(name.startswith("ensemble(") for name in names[14:])
    choice = manifest["strategy"]["choice"]
    assert choice["chosen"] in names and choice["runner_up"] in names and "per-model logistic" in choice["nested"]["versus"]
    assert manifest["policy"]["default_rule"]["rule"] in ("matches_best_single", "near_router_best")
    assert manifest["policy"]["schedule"]["targets"][0] == 0.0
    assert 0 <= manifest["policy"]["default_quality_target"] <= 1
    assert len(manifest["training_data"]["sha256"]) == 64
    assert "test" in manifest["metrics"] and "validation" in manifest["metrics"]
    assert manifest["libraries"]["scikit-learn"]
    # no embedder files (hashing); the demo log has answers, so a verifier
    assert set(manifest["files"]) == {HEAD_FILE, HEAD_ARRAYS_FILE, "neighbours.npz", "verifier.npz", "trained_on.npz"}


@pytest.mark.parametrize("name", [HEAD_FILE, HEAD_ARRAYS_FILE])
def test_tampered_head_is_refused_before_reading(trained_router_dir, tmp_path, name):
    from router_ml.core.artifact import read_estimator

    path = copy(trained_router_dir, tmp_path)
    with open(path / name, "ab") as fh:
        fh.write(b"\x00")
    with pytest.raises(ArtifactIntegrityError, match=f"{name}: sha256 is"):
        load_router(path)
    with pytest.raises(ArtifactIntegrityError):
        read_estimator(path)


def test_serving_reads_arrays_not_the_pickle(trained_router_dir, tmp_path):
    from router_ml.core.artifact import read_estimator

    path = copy(trained_router_dir, tmp_path)
    estimator = read_estimator(path)
    router = load_router(path)
    X = router.embedder.encode(["What is 2 + 2?"])
    np.testing.assert_allclose(router.head.predict(X), estimator.predict(X), atol=1e-6)


def test_heads_pickled_before_the_layers_still_unpickle(trained_router_dir, tmp_path, monkeypatch):
    """Routers from router-ml 0.1 pickled their heads as router_ml.heads.*; that module is now
    router_ml.core.heads. Write such a pickle (classes renamed while dumping), then read it back."""
    import inspect
    import sys

    import joblib

    from router_ml.core import heads
    from router_ml.core.artifact import read_estimator
    from router_ml.core.files import sha256_file

    path = copy(trained_router_dir, tmp_path)
    head = read_estimator(path)
    monkeypatch.delitem(sys.modules, "router_ml.heads", raising=False)
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "router_ml.heads", heads)
        for _, cls in inspect.getmembers(heads, inspect.isclass):
            if cls.__module__ == heads.__name__:
                patch.setattr(cls, "__module__", "router_ml.heads")
        joblib.dump(head, path / HEAD_FILE)
    assert b"router_ml.heads" in (path / HEAD_FILE).read_bytes()
    assert b"router_ml.core.heads" not in (path / HEAD_FILE).read_bytes()
    edit_manifest(path, lambda m: m["files"].update({HEAD_FILE: sha256_file(path / HEAD_FILE)}))
    assert "router_ml.heads" not in sys.modules
    old = read_estimator(path)
    X = load_router(path).embedder.encode(["What is 2 + 2?"])
    np.testing.assert_allclose(old.predict(X), head.predict(X))


def test_missing_head_is_refused(trained_router_dir, tmp_path):
    path = copy(trained_router_dir, tmp_path)
    (path / HEAD_FILE).unlink()
    with pytest.raises(ArtifactIntegrityError, match="missing"):
        load_router(path)


@pytest.mark.parametrize("change", [
    lambda m: m["policy"].update(default_quality_target=0.0),
    lambda m: m["cost_model"]["models"][-1].update(input_price=0.0, output_price=0.0),
    lambda m: m.update(models=list(reversed(m["models"]))),
])
def test_an_edited_manifest_is_refused(trained_router_dir, tmp_path, change):
    path = copy(trained_router_dir, tmp_path)
    edit_manifest(path, change, redigest=False)
    with pytest.raises(ArtifactIntegrityError, match="manifest was changed after packaging"):
        load_router(path)


@pytest.mark.parametrize("change, fragment", [
    (lambda m: m["policy"].pop("schedule"), "policy.schedule is missing"),
    (lambda m: m["policy"].update(cost_scale="cheap"), "policy.cost_scale: expected a number > 0"),
    (lambda m: m["policy"].update(default_quality_target=2), "policy.default_quality_target: expected a number in"),
    (lambda m: m["embedder"].pop("dim"), "embedder.dim is missing"),
    (lambda m: m["cost_model"]["models"][0].pop("output_price"), r"cost_model.models\[0\].output_price is missing"),
    (lambda m: m.update(models="nano"), "models: expected a list of model names"),
    (lambda m: m["policy"]["schedule"].update(targets=[0.5, 0.2]), "policy.schedule is malformed"),
])
def test_a_malformed_manifest_names_the_field(trained_router_dir, tmp_path, change, fragment):
    path = copy(trained_router_dir, tmp_path)
    edit_manifest(path, change)
    with pytest.raises(ArtifactFormatError, match=fragment):
        load_router(path)


def test_wrong_format_version_is_refused(trained_router_dir, tmp_path):
    path = copy(trained_router_dir, tmp_path)
    edit_manifest(path, lambda m: m.update(format_version=99))
    with pytest.raises(ArtifactFormatError, match=r"format_version is 99, this router-ml reads versions \[3\]"):
        load_router(path)


def test_not_a_router_directory(tmp_path):
    with pytest.raises(ArtifactFormatError, match="no manifest.json"):
        load_router(tmp_path)
    (tmp_path / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(ArtifactFormatError, match="not valid JSON"):
        load_router(tmp_path)


def test_embedder_mismatch_is_refused(trained_router_dir, tmp_path):
    path = copy(trained_router_dir, tmp_path)
    edit_manifest(path, lambda m: m["embedder"].update(id="hashing:v0/256"))
    with pytest.raises(EmbedderMismatchError, match="trained with embedder"):
        load_router(path)
    other = copy(trained_router_dir, tmp_path, "other")
    edit_manifest(other, lambda m: m["embedder"].update(fingerprint="0" * 64, kind="sentence-transformers",
                                                          model="minilm", truncation="tail", dim=384))
    with pytest.raises(EmbedderMismatchError, match="fingerprint"):
        load_router(other)


def test_write_never_overwrites_unless_asked(tmp_path):
    out = tmp_path / "router"
    out.mkdir()
    (out / "keep.txt").write_text("user's file")
    with pytest.raises(ArtifactExistsError, match="--overwrite"):
        write_artifact(out, {}, object())
    assert (out / "keep.txt").read_text() == "user's file"


def test_failed_write_leaves_nothing_behind(trained_router_dir, tmp_path):
    from router_ml.core.artifact import read_estimator

    head = read_estimator(trained_router_dir)
    out = tmp_path / "router"
    with pytest.raises(ArtifactFormatError, match="missing"):
        write_artifact(out, {"router_version": "x"}, head)  # a dict is read as a Manifest: it lacks required keys
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces_atomically(trained_router_dir, tmp_path):
    from router_ml.core.artifact import read_estimator
    from router_ml.core.manifest import Manifest

    manifest, head = Manifest.from_dict(read_manifest(trained_router_dir)), read_estimator(trained_router_dir)
    out = copy(trained_router_dir, tmp_path)
    write_artifact(out, replace(manifest, router_version="v2"), head, overwrite=True)
    assert read_manifest(out)["router_version"] == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"]


def test_atomic_write_text(tmp_path):
    target = tmp_path / "sub" / "report.json"
    atomic_write_text(target, "{}\n")
    assert target.read_text() == "{}\n"
    assert [p.name for p in target.parent.iterdir()] == ["report.json"]
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert target.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777  # not left private by mkstemp


def test_artifact_directory_has_ordinary_permissions(trained_router_dir, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    assert trained_router_dir.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


def downgrade(path, change=lambda m: None):
    """What a hostile edit does: claim format 2 (which carried no digest), drop the digest, change the content."""
    from router_ml.core.artifact import MANIFEST_DIGEST_KEY

    edit_manifest(path, lambda m: (m.update(format_version=2), m.pop(MANIFEST_DIGEST_KEY), change(m)), redigest=False)


def test_a_downgraded_and_edited_manifest_is_refused(trained_router_dir, tmp_path):
    """Format 2 carried no digest: claiming it must not let an edited price through."""
    path = copy(trained_router_dir, tmp_path)
    downgrade(path, lambda m: m["cost_model"]["models"][-1].update(input_price=0.0, output_price=0.0))
    with pytest.raises(ArtifactFormatError, match=r"format_version 2 carries no digest of its manifest.*router-ml migrate"):
        load_router(path)
    with pytest.raises(ArtifactFormatError, match="format_version 2"):
        read_manifest(path)


def test_a_trusted_format_2_router_migrates_and_routes_the_same(trained_router_dir, tmp_path):
    from router_ml.core.artifact import migrate_artifact
    from router_ml.core.manifest import PACKAGING_KEYS

    old = copy(trained_router_dir, tmp_path, "old")
    downgrade(old)
    before = (old / MANIFEST_FILE).read_text()
    out = migrate_artifact(old, tmp_path / "new")
    assert (old / MANIFEST_FILE).read_text() == before  # the source is left as it was
    migrated, original = read_manifest(out), read_manifest(trained_router_dir)
    assert migrated["format_version"] == 3 and migrated["migrated"]["from_format_version"] == 2
    assert migrated["files"] == original["files"] and migrated["libraries"] == original["libraries"]
    assert {k: v for k, v in migrated.items() if k not in (*PACKAGING_KEYS, "manifest_sha256", "migrated")} == \
        {k: v for k, v in original.items() if k not in (*PACKAGING_KEYS, "manifest_sha256")}
    prompts = ["What is 2 + 2?", "Write a sorting function in Rust.", "Prove Fermat's little theorem."]
    assert [d.model for d in load_router(out).route_batch(prompts)] == \
        [d.model for d in load_router(trained_router_dir).route_batch(prompts)]
    edit_manifest(out, lambda m: m["policy"].update(default_quality_target=0.0), redigest=False)
    with pytest.raises(ArtifactIntegrityError, match="manifest was changed after packaging"):
        load_router(out)


def test_migrate_in_place_and_its_refusals(trained_router_dir, tmp_path):
    from router_ml.core.artifact import migrate_artifact

    with pytest.raises(ArtifactFormatError, match="this router is current and loads as it is"):
        migrate_artifact(trained_router_dir, tmp_path / "x")
    old = copy(trained_router_dir, tmp_path, "old")
    downgrade(old)
    with pytest.raises(ArtifactExistsError, match="already exists"):
        migrate_artifact(old, old)
    with open(old / HEAD_ARRAYS_FILE, "ab") as fh:
        fh.write(b"\x00")
    with pytest.raises(ArtifactIntegrityError, match=f"{HEAD_ARRAYS_FILE}: sha256 is"):
        migrate_artifact(old, tmp_path / "y")
    assert not (tmp_path / "y").exists()
    inplace = copy(trained_router_dir, tmp_path, "inplace")
    downgrade(inplace)
    migrate_artifact(inplace, inplace, overwrite=True)
    assert read_manifest(inplace)["migrated"]["from_format_version"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inplace", "old"]


def test_migrate_command_shows_the_prices_and_asks(trained_router_dir, tmp_path, monkeypatch, capsys):
    import io

    from router_ml.cli import main

    old = copy(trained_router_dir, tmp_path, "old")
    downgrade(old)
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    assert main(["migrate", "--router", str(old), "--out", str(tmp_path / "new")]) == 130
    assert not (tmp_path / "new").exists()
    shown = capsys.readouterr().err
    assert "models (the order of the head's columns) and prices" in shown and "format 2" in shown
    assert main(["migrate", "--router", str(old), "--out", str(tmp_path / "new"), "--yes"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["format_version"] == 3 and result["from_format_version"] == 2
    assert load_router(tmp_path / "new").version == result["router_version"]
    assert main(["migrate", "--router", str(tmp_path / "new"), "--out", str(tmp_path / "again"), "--yes"]) == 2
    assert "current" in capsys.readouterr().err


def test_overwrite_replaces_only_a_router(trained_router_dir, tmp_path):
    """--overwrite once deleted a web app's folder because it held a file called manifest.json."""
    from router_ml.core.artifact import check_output_dir

    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<html>my app</html>")
    (site / MANIFEST_FILE).write_text(json.dumps({"name": "my app", "start_url": "/", "icons": []}))
    with pytest.raises(ArtifactExistsError, match=r"site: holds a manifest.json that is not a router-ml manifest"):
        check_output_dir(site, overwrite=True)
    head = read_estimator_of(trained_router_dir)
    with pytest.raises(ArtifactExistsError, match="--overwrite replaces routers only"):
        write_artifact(site, read_manifest(trained_router_dir), head, overwrite=True)
    assert (site / "index.html").read_text() == "<html>my app</html>"
    assert json.loads((site / MANIFEST_FILE).read_text())["name"] == "my app"

    for text, fragment in (("[1, 2]", "not a JSON object"), ("{oops", "not valid JSON")):
        (site / MANIFEST_FILE).write_text(text)
        with pytest.raises(ArtifactExistsError, match=fragment):
            check_output_dir(site, overwrite=True)

    router = copy(trained_router_dir, tmp_path, "router")
    (router / "notes.txt").write_text("mine")
    with pytest.raises(ArtifactExistsError, match=r"holds a router and files it does not list \(notes.txt\)"):
        check_output_dir(router, overwrite=True)
    (router / "notes.txt").unlink()
    write_artifact(router, {**read_manifest(trained_router_dir), "router_version": "replaced"}, head, overwrite=True)
    assert read_manifest(router)["router_version"] == "replaced"


def read_estimator_of(path):
    from router_ml.core.artifact import read_estimator

    return read_estimator(path)
