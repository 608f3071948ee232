"""The packaged router: a directory with fixed file names, written atomically.

    manifest.json   format version, router version, embedder spec, models and prices,
                    strategy, quality schedule, data hash, metrics, library versions,
                    the sha256 of every other file and its own digest (its content is
                    built and validated by router_ml.core.manifest; packaging adds the rest)
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

import datetime as dt
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import replace
from importlib import metadata
from pathlib import Path

import numpy as np

from router_ml.core.files import fsync_dir, ordinary_mode, sha256_file
from router_ml.core.manifest import (  # noqa: F401  (the manifest's names, importable from here as before)
    FORMAT_VERSION,
    MANIFEST_DIGEST_KEY,
    MIGRATABLE_VERSIONS,
    READABLE_VERSIONS,
    REQUIRED_KEYS,
    Manifest,
    Migrated,
    json_safe,
    manifest_digest,
    validate_manifest,
)
from router_ml.errors import ArtifactExistsError, ArtifactFormatError, ArtifactIntegrityError

MANIFEST_FILE = "manifest.json"
HEAD_FILE = "head.joblib"
HEAD_ARRAYS_FILE = "head.npz"
EMBEDDER_DIR = "embedder"
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


def write_artifact(out_dir: str | Path, manifest: Manifest | dict, head, *, overwrite: bool = False,
                   embedder_files: dict[str, Path] | None = None,
                   arrays: dict[str, dict[str, np.ndarray]] | None = None) -> Path:
    """Write the head (arrays and estimators), embedder files, other array files (name -> arrays,
    e.g. the training neighbours) and the manifest, atomically.

    `manifest` is a `Manifest` (router_ml.core.manifest); a dict is read as one
    (`Manifest.from_dict`), its packaging keys replaced."""
    import joblib

    from router_ml.core.head_arrays import save_arrays

    out_dir = Path(out_dir)
    check_output_dir(out_dir, overwrite)
    if not isinstance(manifest, Manifest):
        manifest = Manifest.from_dict(manifest, f"the manifest for {out_dir}")

    def stage(tmp: Path) -> list[str]:
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
        return names

    return _write_router_dir(out_dir, manifest, stage, library_versions())


def migrate_artifact(source: str | Path, out: str | Path, *, overwrite: bool = False) -> Path:
    """Rewrite a router of an older format (MIGRATABLE_VERSIONS) in the current one: its files
    copied unchanged (and checked against its manifest), its manifest given a digest and a
    `migrated` note. Its `libraries` are kept: they say what wrote its head.

    A format-2 manifest carries no digest, so nothing can tell whether its prices, targets
    or models were edited after training: migrate only a router you trust, after reading
    what it says (`describe_for_migration`). From then on the digest guards it.
    """
    source, out = Path(source), Path(out)
    manifest = _migratable_manifest(source)
    version = manifest["format_version"]
    verify_files(source, manifest)
    check_output_dir(out, overwrite)
    migrated = replace(Manifest.from_dict(manifest, str(source / MANIFEST_FILE)), migrated=Migrated(
        from_format_version=version, migrated_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds")))

    def stage(tmp: Path) -> list[str]:
        for name in manifest["files"]:
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / name, tmp / name)
        return list(manifest["files"])

    return _write_router_dir(out, migrated, stage, manifest["libraries"], expected_files=manifest["files"])


def describe_for_migration(path: str | Path) -> str:
    """What a router's manifest says that decides its routes (models and prices, the default
    target), for its owner to check before `migrate` vouches for it."""
    manifest = _migratable_manifest(Path(path))
    policy = manifest["policy"]
    lines = [f"router {manifest['router_version']} (format {manifest.get('format_version')!r}), "
             f"created {manifest.get('created_at', 'at an unknown time')}, embedder {manifest['embedder']['id']}",
             f"default quality_target {policy['default_quality_target']}, cost_scale {policy['cost_scale']}",
             "models (the order of the head's columns) and prices, USD per million tokens:"]
    for entry in manifest["cost_model"]["models"]:
        lines.append(f"  {entry['name']}: input {entry['input_price']}, output {entry['output_price']}, "
                     f"{entry['output_tokens']} output tokens, mean logged call cost {entry['mean_call_cost']}")
    return "\n".join(lines)


def _migratable_manifest(source: Path) -> dict:
    """The manifest of a router `migrate` can rewrite: a version in MIGRATABLE_VERSIONS, valid."""
    manifest_path = source / MANIFEST_FILE
    manifest = _parse_manifest(source)
    version = manifest.get("format_version")
    if not _is_version(version, MIGRATABLE_VERSIONS):
        current = _is_version(version, READABLE_VERSIONS)
        raise ArtifactFormatError(
            f"{manifest_path}: format_version is {version!r}; migrate rewrites versions {list(MIGRATABLE_VERSIONS)}"
            + ("; this router is current and loads as it is" if current else "; retrain the router"))
    validate_manifest(manifest, str(manifest_path))
    return manifest


def _write_router_dir(out_dir: Path, manifest: Manifest, stage: Callable[[Path], list[str]],
                      libraries: dict, expected_files: dict[str, str] | None = None) -> Path:
    """Stage a router's files in a hidden sibling (`stage` writes them and returns their
    names), package and write its manifest, then rename it into place (a rename swap when
    `out_dir` exists; check_output_dir has allowed that)."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        ordinary_mode(tmp, directory=True)  # mkdtemp makes it private; a router is an ordinary directory
        names = stage(tmp)
        packaged = {**json_safe(manifest.to_dict()), "format_version": FORMAT_VERSION, "libraries": libraries,
                    "files": {name: sha256_file(tmp / name) for name in names}}
        for name, digest in (expected_files or {}).items():
            if packaged["files"][name] != digest:
                raise ArtifactIntegrityError(f"{name}: changed while it was copied to {out_dir}; nothing was written")
        validate_manifest(packaged, str(out_dir / MANIFEST_FILE))
        packaged[MANIFEST_DIGEST_KEY] = manifest_digest(packaged)
        with open(tmp / MANIFEST_FILE, "w", encoding="utf-8") as fh:
            json.dump(packaged, fh, indent=2, allow_nan=False)
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
    a non-empty directory that is not exactly a router (a router-ml manifest and the files it
    lists, nothing else)."""
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
    if not any(out_dir.iterdir()):
        return
    problem = _not_a_router(out_dir)
    if problem:
        raise ArtifactExistsError(f"{out_dir}: {problem}; --overwrite replaces routers only, never other files")


def _not_a_router(path: Path) -> str | None:
    """Why the directory `path` is not a router that may be replaced, or None when it is one:
    a manifest.json that parses as a router-ml manifest (a format version, every required key,
    its files listed) and no file beside the ones it lists."""
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.is_file():
        return f"is a directory that holds no router ({MANIFEST_FILE} missing)"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"holds a {MANIFEST_FILE} that is not a router's (not valid JSON: {exc})"
    if not isinstance(manifest, dict):
        return f"holds a {MANIFEST_FILE} that is not a router's (not a JSON object)"
    version = manifest.get("format_version")
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if type(version) is not int or version < 1 or missing or not isinstance(manifest["files"], dict):
        found = sorted(manifest)[:8]
        return (f"holds a {MANIFEST_FILE} that is not a router-ml manifest (a router's has a format_version and "
                f"the keys {list(REQUIRED_KEYS)}; this one has {found}{'...' if len(manifest) > 8 else ''})")
    listed = {*manifest["files"], MANIFEST_FILE}
    others = sorted(p.relative_to(path).as_posix() for p in path.rglob("*")
                    if (p.is_symlink() or not p.is_dir()) and p.relative_to(path).as_posix() not in listed)
    if others:
        return (f"holds a router and files it does not list ({', '.join(others[:5])}"
                f"{f' and {len(others) - 5} more' if len(others) > 5 else ''}); move them out first")
    return None


def _is_version(value, versions: tuple[int, ...]) -> bool:
    return type(value) is int and value in versions


def _parse_manifest(path: Path) -> dict:
    """The JSON object in a router directory's manifest, its version not yet checked."""
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
    return manifest


def read_manifest(path: str | Path) -> dict:
    """The manifest of an artifact directory, with its format version, digest and keys checked.

    Every readable version carries a digest of its manifest, checked here. A router of
    format 2, which carried none, is refused with the way to vouch for it (`router-ml
    migrate`): otherwise an edited manifest (a price set to 0) would load unnoticed by
    claiming the old format."""
    path = Path(path)
    manifest_path = path / MANIFEST_FILE
    manifest = _parse_manifest(path)
    version = manifest.get("format_version")
    if _is_version(version, MIGRATABLE_VERSIONS):
        raise ArtifactFormatError(
            f"{manifest_path}: format_version {version} carries no digest of its manifest, so an edit to its prices, "
            "targets or models cannot be detected, and this router-ml does not load it; if you trust this router, "
            f"check what it says and run `router-ml migrate {path} --out NEW_DIR` to add the digest, or retrain it")
    if not _is_version(version, READABLE_VERSIONS):
        raise ArtifactFormatError(
            f"{manifest_path}: format_version is {version!r}, this router-ml reads versions {list(READABLE_VERSIONS)}; "
            "retrain the router or install the router-ml version that wrote it"
        )
    recorded = manifest.get(MANIFEST_DIGEST_KEY)
    if not isinstance(recorded, str):
        raise ArtifactIntegrityError(f"{manifest_path}: no {MANIFEST_DIGEST_KEY}; the manifest cannot be checked")
    if manifest_digest(manifest) != recorded:
        raise ArtifactIntegrityError(
            f"{manifest_path}: its content does not match its {MANIFEST_DIGEST_KEY} ({recorded[:16]}...): the "
            "manifest was changed after packaging (a price, a target, a model) and will not be loaded")
    validate_manifest(manifest, str(manifest_path))
    return manifest


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

