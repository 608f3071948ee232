"""The packaged router: a directory with fixed file names, written atomically.

    manifest.json   format version, router version, embedder spec, models and prices,
                    strategy, quality schedule, data hash, metrics, library versions,
                    and the sha256 of every other file
    head.npz        the head's parameters as plain arrays: what a router serves with
                    (router_ml.core.head_arrays; loaded without pickle or scikit-learn)
    head.joblib     the fitted scikit-learn estimators, for inspection and refitting
    neighbours.npz  the training prompts' vectors, outcomes and previews, for explanations
                    and novelty (router_ml.core.neighbours; optional)
    embedder/       for the ONNX backend: the exported model and its tokenizer

`read_artifact` checks the format version and every sha256 before it reads anything
else, and serving reads only `head.npz` with `allow_pickle=False`. `head.joblib` runs
code when unpickled: `read_estimator` verifies the hashes first, which guards against
accidents and tampering after packaging; it is not a signature, so only unpickle
routers you trust.

Writing goes to a hidden temporary sibling directory that is renamed into place, so a
crash leaves either no artifact or a complete one, never a half-written one. An
existing directory is replaced only with `overwrite=True`, and then by a rename swap.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np

from router_ml.core.files import fsync_dir, ordinary_mode, sha256_file
from router_ml.errors import ArtifactExistsError, ArtifactFormatError, ArtifactIntegrityError

FORMAT_VERSION = 3  # 3: the manifest carries its own digest; 2 (without one) is still read
READABLE_VERSIONS = (2, 3)
MANIFEST_DIGEST_KEY = "manifest_sha256"
MANIFEST_FILE = "manifest.json"
HEAD_FILE = "head.joblib"
HEAD_ARRAYS_FILE = "head.npz"
EMBEDDER_DIR = "embedder"
REQUIRED_KEYS = (
    "format_version",
    "router_version",
    "embedder",
    "models",
    "cost_model",
    "strategy",
    "policy",
    "training_data",
    "metrics",
    "libraries",
    "files",
)
_TRACKED_LIBRARIES = ("router-ml", "scikit-learn", "numpy", "joblib", "sentence-transformers", "torch", "transformers")


def library_versions() -> dict[str, str | None]:
    """Installed versions, read from package metadata (imports nothing heavy)."""
    versions = {}
    for name in _TRACKED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def write_artifact(out_dir: str | Path, manifest: dict, head, *, overwrite: bool = False,
                   embedder_files: dict[str, Path] | None = None,
                   arrays: dict[str, dict[str, np.ndarray]] | None = None) -> Path:
    """Write the head (arrays and estimators), embedder files, other array files (name -> arrays,
    e.g. the training neighbours) and the manifest, atomically."""
    import joblib

    from router_ml.core.head_arrays import save_arrays

    out_dir = Path(out_dir)
    check_output_dir(out_dir, overwrite)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        ordinary_mode(tmp, directory=True)  # mkdtemp makes it private; a router is an ordinary directory
        joblib.dump(head, tmp / HEAD_FILE)
        save_arrays(tmp / HEAD_ARRAYS_FILE, head.to_arrays())
        names = [HEAD_FILE, HEAD_ARRAYS_FILE]
        for name, content in (arrays or {}).items():
            save_arrays(tmp / name, content)
            names.append(name)
        if embedder_files:
            (tmp / EMBEDDER_DIR).mkdir()
            for name, source in embedder_files.items():
                shutil.copyfile(source, tmp / EMBEDDER_DIR / name)
                names.append(f"{EMBEDDER_DIR}/{name}")
        manifest = {**manifest, "format_version": FORMAT_VERSION, "libraries": library_versions()}
        manifest["files"] = {name: sha256_file(tmp / name) for name in names}
        missing = [k for k in REQUIRED_KEYS if k not in manifest]
        if missing:
            raise ArtifactFormatError(f"manifest is missing {missing}")
        manifest[MANIFEST_DIGEST_KEY] = manifest_digest(manifest)
        with open(tmp / MANIFEST_FILE, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=2, allow_nan=False)
            fh.flush()
            os.fsync(fh.fileno())
        for name in names:
            with open(tmp / name, "rb") as fh:
                os.fsync(fh.fileno())
        if out_dir.exists():
            backup = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            backup.rmdir()
            out_dir.rename(backup)
            tmp.rename(out_dir)
            shutil.rmtree(backup)
        else:
            tmp.rename(out_dir)
        fsync_dir(out_dir.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def check_output_dir(out_dir: str | Path, overwrite: bool) -> None:
    """Refuse, before any work, an output that cannot become a router or whose replacement would
    destroy something that is not a router: the working directory or one above it, a file, or
    a non-empty directory without a manifest."""
    out_dir = Path(out_dir)
    resolved, here = out_dir.resolve(), Path.cwd().resolve()
    if resolved == here or resolved in here.parents:
        raise ArtifactExistsError(f"{out_dir}: is the working directory or contains it; a router needs a directory "
                                  "of its own, e.g. --out models/v1")
    if not out_dir.exists():
        return
    if not overwrite:
        raise ArtifactExistsError(f"{out_dir}: already exists; choose another --out or pass --overwrite")
    if not out_dir.is_dir():
        raise ArtifactExistsError(f"{out_dir}: is a file, not a router directory; --overwrite replaces routers only")
    if any(out_dir.iterdir()) and not (out_dir / MANIFEST_FILE).is_file():
        raise ArtifactExistsError(f"{out_dir}: is a directory that holds no router ({MANIFEST_FILE} missing); "
                                  "--overwrite replaces routers only, never other files")


def read_manifest(path: str | Path) -> dict:
    """The manifest of an artifact directory, with its format version and keys checked."""
    path = Path(path)
    manifest_path = path / MANIFEST_FILE
    if not path.is_dir():
        raise ArtifactFormatError(f"{path}: not a router directory (expected {MANIFEST_FILE} and {HEAD_FILE} inside)")
    if not manifest_path.is_file():
        raise ArtifactFormatError(f"{path}: no {MANIFEST_FILE}; is this a router written by `router-ml train`?")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactFormatError(f"{manifest_path}: not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise ArtifactFormatError(f"{manifest_path}: expected a JSON object")
    version = manifest.get("format_version")
    if version not in READABLE_VERSIONS:
        raise ArtifactFormatError(
            f"{manifest_path}: format_version is {version!r}, this router-ml reads versions {list(READABLE_VERSIONS)}; "
            "retrain the router or install the router-ml version that wrote it"
        )
    if version >= 3:
        recorded = manifest.get(MANIFEST_DIGEST_KEY)
        if not isinstance(recorded, str):
            raise ArtifactIntegrityError(f"{manifest_path}: no {MANIFEST_DIGEST_KEY}; the manifest cannot be checked")
        if manifest_digest(manifest) != recorded:
            raise ArtifactIntegrityError(
                f"{manifest_path}: its content does not match its {MANIFEST_DIGEST_KEY} ({recorded[:16]}...): the "
                "manifest was changed after packaging (a price, a target, a model) and will not be loaded")
    validate_manifest(manifest, str(manifest_path))
    return manifest


def manifest_digest(manifest: dict) -> str:
    """sha256 of the manifest's content (canonical JSON, its own digest left out)."""
    content = {k: v for k, v in manifest.items() if k != MANIFEST_DIGEST_KEY}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def validate_manifest(manifest: dict, where: str) -> None:
    """ArtifactFormatError naming the first missing or malformed field a router needs to load."""
    def need(value, path: str, kind, what: str):
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            raise ArtifactFormatError(f"{where}: {path}: expected {what}, found {value!r}"[:400])
        return value

    def field(obj: dict, key: str, path: str):
        if key not in obj:
            raise ArtifactFormatError(f"{where}: {path}.{key} is missing" if path else f"{where}: {key} is missing")
        return obj[key]

    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise ArtifactFormatError(f"{where}: missing keys {missing}")
    need(manifest["router_version"], "router_version", str, "a version string")
    models = need(manifest["models"], "models", list, "a list of model names")
    if not models or not all(isinstance(m, str) and m for m in models) or len(set(models)) != len(models):
        raise ArtifactFormatError(f"{where}: models: expected distinct model names, found {models!r}")
    embedder = need(manifest["embedder"], "embedder", dict, "the embedder's settings")
    for key, kind, what in (("kind", str, "a backend name"), ("id", str, "an embedder id"), ("dim", int, "a dimension")):
        need(field(embedder, key, "embedder"), f"embedder.{key}", kind, what)
    cost_model = need(manifest["cost_model"], "cost_model", dict, "the cost model")
    entries = need(field(cost_model, "models", "cost_model"), "cost_model.models", list, "a list of priced models")
    for i, entry in enumerate(entries):
        path = f"cost_model.models[{i}]"
        need(entry, path, dict, "a priced model")
        for key in ("name", "input_price", "output_price", "output_tokens", "mean_call_cost"):
            value = field(entry, key, path)
            if key == "name":
                need(value, f"{path}.name", str, "a model name")
            elif value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0):
                raise ArtifactFormatError(f"{where}: {path}.{key}: expected a number >= 0, found {value!r}")
    policy = need(manifest["policy"], "policy", dict, "the decision policy")
    schedule = need(field(policy, "schedule", "policy"), "policy.schedule", dict, "the quality schedule")
    for key in ("targets", "lams"):
        need(field(schedule, key, "policy.schedule"), f"policy.schedule.{key}", list, "a list of numbers")
    scale = need(field(policy, "cost_scale", "policy"), "policy.cost_scale", (int, float), "a number > 0")
    if not scale > 0:
        raise ArtifactFormatError(f"{where}: policy.cost_scale: expected a number > 0, found {scale!r}")
    target = need(field(policy, "default_quality_target", "policy"), "policy.default_quality_target", (int, float),
                  "a number in [0, 1]")
    if not 0 <= target <= 1:
        raise ArtifactFormatError(f"{where}: policy.default_quality_target: expected a number in [0, 1], "
                                  f"found {target!r}")
    files = need(manifest["files"], "files", dict, "file names and their sha256")
    for name, digest in files.items():
        if not isinstance(name, str) or not isinstance(digest, str):
            raise ArtifactFormatError(f"{where}: files: expected name: sha256 pairs, found {name!r}: {digest!r}")


def verify_files(path: str | Path, manifest: dict) -> None:
    """Check every file listed in the manifest against its sha256."""
    path = Path(path)
    for required in (HEAD_FILE, HEAD_ARRAYS_FILE):
        if required not in manifest["files"]:
            raise ArtifactIntegrityError(f"{path / MANIFEST_FILE}: 'files' does not list {required}")
    for name, expected in manifest["files"].items():
        file = path / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise ArtifactIntegrityError(f"{path / MANIFEST_FILE}: file name {name!r} points outside the artifact")
        if not file.is_file():
            raise ArtifactIntegrityError(f"{file}: listed in the manifest but missing")
        actual = sha256_file(file)
        if actual != expected:
            raise ArtifactIntegrityError(
                f"{file}: sha256 is {actual[:16]}..., the manifest says {str(expected)[:16]}...; "
                "the file was changed after packaging and will not be loaded"
            )


def read_artifact(path: str | Path):
    """Manifest and compiled head of a verified artifact (no pickle, no scikit-learn)."""
    from router_ml.core.head_arrays import load_head_arrays

    path = Path(path)
    manifest = read_manifest(path)
    verify_files(path, manifest)
    try:
        return manifest, load_head_arrays(path / HEAD_ARRAYS_FILE)
    except (ValueError, KeyError, OSError) as exc:
        raise ArtifactFormatError(f"{path / HEAD_ARRAYS_FILE}: not a head this router-ml can read: {exc}") from exc


def read_estimator(path: str | Path):
    """The scikit-learn head (unpickled only after every hash is verified).

    Routers written before the package was split into layers pickled their heads as
    `router_ml.heads.*`; that module is now `router_ml.core.heads`, so the old name is
    pointed at it for the unpickler.
    """
    import joblib

    from router_ml.core import heads

    path = Path(path)
    verify_files(path, read_manifest(path))
    sys.modules.setdefault("router_ml.heads", heads)
    return joblib.load(path / HEAD_FILE)

