"""A router's manifest: built from typed sections in one place, checked by one validator.

Every writer of a router (training, `convert`, `migrate`) builds a `Manifest` from its
sections and hands it to `router_ml.core.artifact.write_artifact`, which adds what only
packaging knows (format version, library versions, each file's sha256 and the manifest's
own digest). A `Manifest` is checked by `validate_manifest` when it is created (and again,
packaged, before it is written), so a router that could not load is never written.

    router_version, created_at   who it is
    embedder                     EmbedderSection: the backend's settings, its id, a proof of
                                 equivalence for a converted router
    models, cost_model           the columns of the head, in order, and their prices
    success_threshold            the score counted as a success
    strategy                     StrategySection: the head and the table it was chosen from
    policy                       PolicySection: the quality schedule and the default target
    training_data                TrainingDataSection: the outcomes' source, hash and sizes
    metrics                      MetricsSection: validation, held-out, and the embedder they
                                 were measured with when it is not this router's
    config                       the training settings (TrainConfig.to_dict())
    verifier                     the learned verifier and its cascade plans (router_ml.policy.verifier)
    converted_from, migrated     provenance of a router rewritten by `convert` or `migrate`

`Manifest.to_dict()` is exactly the JSON content a router has always written, and
`Manifest.from_dict` reads any valid manifest back, keeping keys this version has no field
for in `extra`, so `from_dict(d).to_dict() == d` (packaging keys aside). The values stay
as given (numpy scalars, NaN) until written: `json_safe` turns them into the JSON the file
holds. This module imports nothing beyond the standard library.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import MISSING, dataclass, field, fields
from typing import ClassVar

from router_ml.errors import ArtifactFormatError

FORMAT_VERSION = 3  # 3: the manifest carries its own digest
READABLE_VERSIONS = (3,)
# 2 carried no digest of the manifest, so an edit to a price or a target cannot be detected:
# such a router loads only once its owner vouches for it (`router-ml migrate`).
MIGRATABLE_VERSIONS = (2,)
MANIFEST_DIGEST_KEY = "manifest_sha256"
CONTENT_KEYS = ("router_version", "embedder", "models", "cost_model", "strategy", "policy", "training_data",
                "metrics")
PACKAGING_KEYS = ("format_version", "libraries", "files")  # set by write_artifact, never by a builder
REQUIRED_KEYS = (*PACKAGING_KEYS[:1], *CONTENT_KEYS, *PACKAGING_KEYS[1:])


def json_safe(obj):
    """The value as JSON holds it: numpy scalars as Python numbers, tuples as lists, NaN and
    infinities as None."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "item") and hasattr(obj, "dtype") and getattr(obj, "ndim", None) == 0:  # a numpy scalar
        obj = obj.item()
    return None if isinstance(obj, float) and not math.isfinite(obj) else obj


def manifest_digest(manifest: dict) -> str:
    """sha256 of the manifest's content (canonical JSON, its own digest left out)."""
    content = {k: v for k, v in manifest.items() if k != MANIFEST_DIGEST_KEY}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def validate_manifest(manifest: dict, where: str, *, packaged: bool = True) -> None:
    """ArtifactFormatError naming the first missing or malformed field a router needs to load.

    `packaged=False` checks a manifest before packaging: its content, not the keys
    `write_artifact` adds (format version, libraries, files)."""
    def need(value, path: str, kind, what: str):
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            raise ArtifactFormatError(f"{where}: {path}: expected {what}, found {value!r}"[:400])
        return value

    def field_of(obj: dict, key: str, path: str):
        if key not in obj:
            raise ArtifactFormatError(f"{where}: {path}.{key} is missing" if path else f"{where}: {key} is missing")
        return obj[key]

    missing = [k for k in (REQUIRED_KEYS if packaged else CONTENT_KEYS) if k not in manifest]
    if missing:
        raise ArtifactFormatError(f"{where}: missing keys {missing}")
    need(manifest["router_version"], "router_version", str, "a version string")
    models = need(manifest["models"], "models", list, "a list of model names")
    if not models or not all(isinstance(m, str) and m for m in models) or len(set(models)) != len(models):
        raise ArtifactFormatError(f"{where}: models: expected distinct model names, found {models!r}")
    embedder = need(manifest["embedder"], "embedder", dict, "the embedder's settings")
    for key, kind, what in (("kind", str, "a backend name"), ("id", str, "an embedder id"), ("dim", int, "a dimension")):
        need(field_of(embedder, key, "embedder"), f"embedder.{key}", kind, what)
    cost_model = need(manifest["cost_model"], "cost_model", dict, "the cost model")
    entries = need(field_of(cost_model, "models", "cost_model"), "cost_model.models", list, "a list of priced models")
    for i, entry in enumerate(entries):
        path = f"cost_model.models[{i}]"
        need(entry, path, dict, "a priced model")
        for key in ("name", "input_price", "output_price", "output_tokens", "mean_call_cost"):
            value = field_of(entry, key, path)
            if key == "name":
                need(value, f"{path}.name", str, "a model name")
            elif value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0):
                raise ArtifactFormatError(f"{where}: {path}.{key}: expected a number >= 0, found {value!r}")
    policy = need(manifest["policy"], "policy", dict, "the decision policy")
    schedule = need(field_of(policy, "schedule", "policy"), "policy.schedule", dict, "the quality schedule")
    for key in ("targets", "lams"):
        need(field_of(schedule, key, "policy.schedule"), f"policy.schedule.{key}", list, "a list of numbers")
    scale = need(field_of(policy, "cost_scale", "policy"), "policy.cost_scale", (int, float), "a number > 0")
    if not scale > 0:
        raise ArtifactFormatError(f"{where}: policy.cost_scale: expected a number > 0, found {scale!r}")
    target = need(field_of(policy, "default_quality_target", "policy"), "policy.default_quality_target", (int, float),
                  "a number in [0, 1]")
    if not 0 <= target <= 1:
        raise ArtifactFormatError(f"{where}: policy.default_quality_target: expected a number in [0, 1], "
                                  f"found {target!r}")
    for key in ("strategy", "training_data", "metrics"):
        need(manifest[key], key, dict, f"the {key.replace('_', ' ')} section")
    if not packaged:
        return
    files = need(manifest["files"], "files", dict, "file names and their sha256")
    for name, digest in files.items():
        if not isinstance(name, str) or not isinstance(digest, str):
            raise ArtifactFormatError(f"{where}: files: expected name: sha256 pairs, found {name!r}: {digest!r}")


# -- sections ----------------------------------------------------------------------------

class _Section:
    """A JSON object with known keys as fields and the rest in `extra`.

    A field whose default is None is optional: None leaves its key out. A key present in a
    read manifest with the value null is kept in `extra`, so a manifest reads back as it was.
    Fields listed in `_sections` hold a nested section."""

    _sections: ClassVar[dict[str, type[_Section]]] = {}
    extra: dict

    def to_dict(self) -> dict:
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "extra" or value is None and f.default is None:
                continue
            out[f.name] = value.to_dict() if isinstance(value, _Section) else value
        return {**out, **_unset(self.extra, out)}

    @classmethod
    def from_dict(cls, data: dict, where: str = "manifest"):
        if not isinstance(data, dict):
            raise ArtifactFormatError(f"{where}: expected a JSON object, found {data!r}"[:400])
        names = {f.name: f for f in fields(cls) if f.name != "extra"}
        known, extra = {}, {}
        for key, value in data.items():
            if key not in names or value is None and names[key].default is None:
                extra[key] = value
            else:
                section = cls._sections.get(key)
                known[key] = section.from_dict(value, f"{where}.{key}") if section else value
        missing = [name for name, f in names.items() if name not in known and f.default is MISSING]
        if missing:
            raise ArtifactFormatError(f"{where}: missing keys {missing}")
        return cls(**known, extra=extra)


def _unset(extra: dict, known: dict) -> dict:
    """`extra` without the keys a field now sets (a null read back, then given a value)."""
    return {k: v for k, v in extra.items() if k not in known}


@dataclass(frozen=True)
class EmbedderSection(_Section):
    """The embedder: its backend's settings (`Embedder.spec()`: kind, dim, model, fingerprint,
    truncation...), its id, and for a converted router the proof that it routes like the one
    it replaces."""

    settings: dict
    id: str
    equivalent_to: dict | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def of(cls, embedder, **kwargs) -> EmbedderSection:
        """The section of an object with the Embedder contract."""
        return cls(settings=embedder.spec(), id=embedder.id, **kwargs)

    def to_dict(self) -> dict:
        out = {**self.settings, "id": self.id}
        if self.equivalent_to is not None:
            out["equivalent_to"] = self.equivalent_to
        return {**out, **_unset(self.extra, out)}

    @classmethod
    def from_dict(cls, data: dict, where: str = "manifest.embedder") -> EmbedderSection:
        if not isinstance(data, dict) or "id" not in data:
            raise ArtifactFormatError(f"{where}: expected the embedder's settings with its id, found {data!r}"[:400])
        settings = {k: v for k, v in data.items() if k not in ("id", "equivalent_to")}
        extra = {"equivalent_to": None} if "equivalent_to" in data and data["equivalent_to"] is None else {}
        return cls(settings=settings, id=data["id"], equivalent_to=data.get("equivalent_to"), extra=extra)


@dataclass(frozen=True)
class StrategySection(_Section):
    """The head: its strategy and parameters, and every candidate it was chosen from."""

    name: str
    params: dict
    route_on_calibrated: bool
    selected_by: str
    candidates: list[dict]
    choice: dict | None = None  # the runner-up, the margin and the nested estimate against the baselines
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PolicySection(_Section):
    """How the knob maps to a trade-off: the quality schedule, the cost scale, the default
    target and the rule that chose it."""

    schedule: dict
    cost_scale: float
    default_quality_target: float
    default_rule: dict | None = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingDataSection(_Section):
    """What the router learned from: the outcomes' source and sha256, its size and split, the
    cheapest-successful labels; with Spark, the master and any sampling."""

    source: str
    sha256: str
    rows: int
    prompts: int
    train_prompts: int
    test_prompts: int
    labels: dict | None = None
    spark: dict | None = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class MetricsSection(_Section):
    """Validation figures (cross-validation on the training prompts), held-out ones when there
    was a test side, and the embedder they were measured with when it is not the router's."""

    validation: dict
    test: dict | None = None
    measured_with_embedder: str | None = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ConvertedFrom(_Section):
    """The router a converted one was made from."""

    source: str
    router_version: str
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Migrated(_Section):
    """A router of an older format that its owner vouched for and `migrate` rewrote."""

    from_format_version: int
    migrated_at: str
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest(_Section):
    """Everything a router's manifest says, validated on creation (`dataclasses.replace` makes
    a changed copy, validated again)."""

    _sections: ClassVar[dict[str, type[_Section]]] = {
        "embedder": EmbedderSection, "strategy": StrategySection, "policy": PolicySection,
        "training_data": TrainingDataSection, "metrics": MetricsSection, "converted_from": ConvertedFrom,
        "migrated": Migrated,
    }

    router_version: str
    embedder: EmbedderSection
    models: list[str]
    cost_model: dict  # router_ml.core.catalog.CostModel.to_dict()
    strategy: StrategySection
    policy: PolicySection
    training_data: TrainingDataSection
    metrics: MetricsSection
    created_at: str | None = None
    success_threshold: float | None = None
    config: dict | None = None
    verifier: dict | None = None
    converted_from: ConvertedFrom | None = None
    migrated: Migrated | None = None
    extra: dict = field(default_factory=dict)

    _ORDER: ClassVar[tuple[str, ...]] = (
        "router_version", "created_at", "embedder", "models", "cost_model", "success_threshold", "strategy", "policy",
        "training_data", "metrics", "config", "verifier", "converted_from", "migrated")

    def __post_init__(self) -> None:
        clash = sorted(set(self.extra) & {*PACKAGING_KEYS, MANIFEST_DIGEST_KEY})
        if clash:
            raise ArtifactFormatError(f"manifest of {self.router_version!r}: {clash} are written by packaging, "
                                      "not by a builder")
        validate_manifest(json_safe(self.to_dict()), f"manifest of {self.router_version!r}", packaged=False)

    def to_dict(self) -> dict:
        """The manifest's content in the order a router has always written it (values as given;
        `json_safe` makes them JSON)."""
        out = super().to_dict()
        return {**{k: out.pop(k) for k in self._ORDER if k in out}, **out}

    @classmethod
    def from_dict(cls, data: dict, where: str = "manifest") -> Manifest:
        """The manifest of a read router; packaging keys (format version, libraries, files,
        digest) are left out, since writing sets them anew."""
        if not isinstance(data, dict):
            raise ArtifactFormatError(f"{where}: expected a JSON object, found {type(data).__name__}")
        content = {k: v for k, v in data.items() if k not in (*PACKAGING_KEYS, MANIFEST_DIGEST_KEY)}
        missing = [k for k in CONTENT_KEYS if k not in content]
        if missing:
            raise ArtifactFormatError(f"{where}: missing keys {missing}")
        return super().from_dict(content, where)
