"""Model catalogs (what each candidate model costs) and the cost model a router carries.

A catalog is a small YAML or TOML file a user writes: per model, the price in USD per
million input and output tokens, and optionally a typical output length. Training uses
it to price calls whose cost was not logged; the packaged router keeps a `CostModel`
(prices plus the mean logged cost per call) so that at routing time it can estimate
what each model would cost for *this* prompt.

Deliberately left out: live price feeds and per-provider discounts. Token counts are
estimated from characters (`chars_per_token`, 4 by default, the usual rule of thumb
for English with BPE tokenizers) because the router must not depend on every
provider's tokenizer.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from router_ml.core.validation import check_number
from router_ml.errors import CatalogError

DEFAULT_OUTPUT_TOKENS = 256
DEFAULT_CHARS_PER_TOKEN = 4.0
_MODEL_KEYS = {"input_price", "output_price", "output_tokens", "description", "base_url", "api_key_env", "upstream_model",
               "prior"}
PRIOR_KINDS = ("success", "like", "evaluations")
_TOP_KEYS = {"models", "default_output_tokens", "chars_per_token", "aliases"}
_ALIAS_KEYS = {"model", "quality_target", "up_to", "description"}
ROUTING_NAMES = ("auto", "router")  # built-in: the router decides


@dataclass(frozen=True)
class Alias:
    """A client-facing model name (e.g. "gpt-4o" in an app written against a provider).

    `model`: that catalog model, always. Otherwise the router decides: at `quality_target`
    (None: the request's, else the router's default) among the models whose estimated cost
    for the request is at most `up_to`'s (None: all).
    """

    name: str
    model: str | None = None
    quality_target: float | None = None
    up_to: str | None = None
    description: str = ""

    def describe(self) -> str:
        if self.description:
            return self.description
        if self.model is not None:
            return f"always {self.model}"
        parts = ["routed by the learned router"]
        if self.quality_target is not None:
            parts.append(f"at quality_target {self.quality_target:g}")
        if self.up_to is not None:
            parts.append(f"among models no dearer than {self.up_to} for the request")
        return ", ".join(parts)


@dataclass(frozen=True)
class ModelPrice:
    """One model's prices (USD per million tokens) and typical output length."""

    input_price: float
    output_price: float
    output_tokens: int | None = None
    description: str = ""
    # Where the gateway sends this model's calls (OpenAI-compatible): base URL (may name
    # environment variables as ${VAR}), the variable holding the API key, and the model
    # name the provider expects (default: the catalog name).
    base_url: str | None = None
    api_key_env: str | None = None
    upstream_model: str | None = None
    # For a model the router was not trained on (onboarding, router_ml.policy.onboarding): what to
    # believe about its P(success) until its own outcomes are in. One of {"success": 0.7}, {"like":
    # "another-model"} or {"evaluations": "path/to/evals.csv"} (a few offline evaluations, columns
    # prompt and score; the path relative to the catalog file). None: like the router's model
    # nearest in price.
    prior: dict | None = None


@dataclass(frozen=True)
class Catalog:
    """Candidate models with prices; `models` keeps the file's order."""

    models: dict[str, ModelPrice]
    default_output_tokens: int = DEFAULT_OUTPUT_TOKENS
    chars_per_token: float = DEFAULT_CHARS_PER_TOKEN
    source: str = "<memory>"
    aliases: dict[str, Alias] = field(default_factory=dict)

    def output_tokens(self, model: str) -> int:
        price = self.models[model]
        return price.output_tokens if price.output_tokens is not None else self.default_output_tokens

    def call_cost(self, model: str, input_tokens: float, output_tokens: float | None = None) -> float:
        """USD cost of one call; a missing output length falls back to the typical one."""
        price = self.models[model]
        out = self.output_tokens(model) if output_tokens is None else output_tokens
        return (input_tokens * price.input_price + out * price.output_price) / 1e6

    def to_dict(self) -> dict:
        return {
            "default_output_tokens": self.default_output_tokens,
            "chars_per_token": self.chars_per_token,
            "models": {name: asdict(price) for name, price in self.models.items()},
        }


def estimate_tokens(text_length: int | np.ndarray, chars_per_token: float = DEFAULT_CHARS_PER_TOKEN):
    """Token count estimated from a character count (at least one token)."""
    return np.maximum(1, np.ceil(np.asarray(text_length, dtype=float) / chars_per_token))


def _number(value, where: str, *, integer: bool = False, positive: bool = False):
    return check_number(value, where, integer=integer, positive=positive, error=CatalogError)


def _text(value, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CatalogError(f"{where}: expected a non-empty string, found {value!r}")
    return value.strip()


def catalog_from_dict(data: dict, source: str = "<memory>") -> Catalog:
    """Validate a parsed catalog; every error names `source` and the offending key."""
    if not isinstance(data, dict):
        raise CatalogError(f"{source}: expected a mapping with a 'models' key, found {type(data).__name__}")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise CatalogError(f"{source}: unknown top-level keys {sorted(unknown)}; expected some of {sorted(_TOP_KEYS)}")
    raw_models = data.get("models")
    if not isinstance(raw_models, dict) or not raw_models:
        raise CatalogError(
            f"{source}: expected 'models' to map model names to prices, e.g. "
            "models: {gpt-4o: {input_price: 2.5, output_price: 10.0}}"
        )
    models: dict[str, ModelPrice] = {}
    for name, entry in raw_models.items():
        where = f"{source}: models.{name}"
        if not isinstance(name, str) or not name.strip():
            raise CatalogError(f"{source}: model names must be non-empty strings, found {name!r}")
        if not isinstance(entry, dict):
            raise CatalogError(f"{where}: expected a mapping with input_price and output_price, found {entry!r}")
        unknown = set(entry) - _MODEL_KEYS
        if unknown:
            raise CatalogError(f"{where}: unknown keys {sorted(unknown)}; expected some of {sorted(_MODEL_KEYS)}")
        missing = {"input_price", "output_price"} - set(entry)
        if missing:
            raise CatalogError(f"{where}: missing {sorted(missing)} (USD per million tokens)")
        models[name] = ModelPrice(
            input_price=_number(entry["input_price"], f"{where}.input_price"),
            output_price=_number(entry["output_price"], f"{where}.output_price"),
            output_tokens=(
                None if entry.get("output_tokens") is None
                else _number(entry["output_tokens"], f"{where}.output_tokens", integer=True)
            ),
            description=str(entry.get("description", "")),
            **{key: _text(entry[key], f"{where}.{key}") for key in ("base_url", "api_key_env", "upstream_model")
               if entry.get(key) is not None},
            prior=_prior(entry.get("prior"), f"{where}.prior", source),
        )
    for name, price in models.items():
        like = (price.prior or {}).get("like")
        if like is not None and like not in models:
            raise CatalogError(f"{source}: models.{name}.prior.like: {like!r} is not a model of the catalog "
                               f"({list(models)})")
    return Catalog(
        models=models,
        aliases=_aliases(data.get("aliases"), models, source),
        default_output_tokens=_number(
            data.get("default_output_tokens", DEFAULT_OUTPUT_TOKENS), f"{source}: default_output_tokens", integer=True
        ),
        chars_per_token=_number(
            data.get("chars_per_token", DEFAULT_CHARS_PER_TOKEN), f"{source}: chars_per_token", positive=True
        ),
        source=source,
    )


def _prior(raw, where: str, source: str) -> dict | None:
    """A new model's prior (see ModelPrice.prior), checked; an evaluations path made absolute."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in PRIOR_KINDS:
        raise CatalogError(f"{where}: expected one of {{success: 0.7}}, {{like: MODEL}} or {{evaluations: FILE}}, "
                           f"found {raw!r}")
    kind, value = next(iter(raw.items()))
    if kind == "success":
        value = check_number(value, where + ".success", error=CatalogError)
        if not 0.0 <= value <= 1.0:
            raise CatalogError(f"{where}.success: expected a probability in [0, 1], found {value!r}")
        return {"success": float(value)}
    value = _text(value, f"{where}.{kind}")
    if kind == "evaluations":
        path = Path(value)
        if not path.is_absolute() and source not in ("<memory>", ""):
            path = Path(source).parent / path
        if not path.is_file():
            raise CatalogError(f"{where}.evaluations: {path}: file not found (a CSV or JSONL of prompt and score)")
        value = str(path)
    return {kind: value}


def _aliases(raw, models: dict[str, ModelPrice], source: str) -> dict[str, Alias]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise CatalogError(f"{source}: aliases: expected a mapping of client-facing names, e.g. "
                           "aliases: {gpt-4o: {up_to: pro}, gpt-4o-mini: {model: mini}}")
    aliases = {}
    for name, entry in raw.items():
        where = f"{source}: aliases.{name}"
        if not isinstance(name, str) or not name.strip():
            raise CatalogError(f"{source}: aliases: names must be non-empty strings, found {name!r}")
        if name in models or name in ROUTING_NAMES:
            raise CatalogError(f"{where}: {name!r} is already a model name (or a built-in routing name); an alias "
                               "must be a new name")
        if not isinstance(entry, dict):
            raise CatalogError(f"{where}: expected a mapping with model, or quality_target and/or up_to")
        unknown = set(entry) - _ALIAS_KEYS
        if unknown:
            raise CatalogError(f"{where}: unknown keys {sorted(unknown)}; expected some of {sorted(_ALIAS_KEYS)}")
        for key in ("model", "up_to"):
            if entry.get(key) is not None and entry[key] not in models:
                raise CatalogError(f"{where}.{key}: {entry[key]!r} is not a model of the catalog ({list(models)})")
        if entry.get("model") is not None and (entry.get("quality_target") is not None or entry.get("up_to") is not None):
            raise CatalogError(f"{where}: give model (this model, always) or quality_target/up_to (route), not both")
        target = entry.get("quality_target")
        if target is not None:
            target = check_number(target, f"{where}.quality_target", error=CatalogError)
            if not 0.0 <= target <= 1.0:
                raise CatalogError(f"{where}.quality_target: expected a number in [0, 1], found {target!r}")
        aliases[name] = Alias(name, entry.get("model"), target, entry.get("up_to"), str(entry.get("description", "")))
    return aliases


def load_catalog(path: str | Path) -> Catalog:
    """Read a catalog from `.yaml`/`.yml` or `.toml`, chosen by extension."""
    path = Path(path)
    if not path.is_file():
        raise CatalogError(f"{path}: catalog file not found")
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8")
    try:
        if suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        elif suffix == ".toml":
            data = tomllib.loads(text)
        else:
            raise CatalogError(f"{path}: expected a .yaml, .yml or .toml catalog, found '{suffix or 'no extension'}'")
    except CatalogError:
        raise
    except Exception as exc:  # the parsers' own errors carry the line number
        raise CatalogError(f"{path}: not valid {suffix[1:].upper()}: {exc}") from exc
    return catalog_from_dict(data, source=str(path))


def write_catalog(catalog: Catalog, path: str | Path) -> None:
    """Write a catalog as YAML (used by the importers)."""
    import yaml

    data = catalog.to_dict()
    for entry in data["models"].values():
        for key in [k for k, v in entry.items() if v is None or v == ""]:
            del entry[key]
    Path(path).write_text(
        "# Prices in USD per million tokens. See data/README.md for the format.\n"
        + yaml.safe_dump(data, sort_keys=False),
        encoding="utf-8",
    )


@dataclass
class CostModel:
    """What a packaged router knows about cost: per-model prices or a mean cost per call.

    For a model with prices, a call costs input tokens (estimated from the prompt's
    characters) times the input price plus its typical output length times the output
    price. A model without prices (its costs were only ever logged) costs its mean
    logged cost per call, whatever the prompt.
    """

    models: list[str]
    input_price: list[float | None]
    output_price: list[float | None]
    output_tokens: list[int]
    mean_call_cost: list[float | None]
    chars_per_token: float = DEFAULT_CHARS_PER_TOKEN
    _fixed: np.ndarray = field(init=False, repr=False)
    _per_token: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        fixed, per_token = [], []
        for i, model in enumerate(self.models):
            if self.input_price[i] is not None and self.output_price[i] is not None:
                fixed.append(self.output_tokens[i] * self.output_price[i] / 1e6)
                per_token.append(self.input_price[i] / 1e6)
            elif self.mean_call_cost[i] is not None:
                fixed.append(self.mean_call_cost[i])
                per_token.append(0.0)
            else:
                raise CatalogError(f"model {model!r} has neither prices nor a logged cost")
        self._fixed = np.asarray(fixed, dtype=np.float64)
        self._per_token = np.asarray(per_token, dtype=np.float64)

    def estimate(self, text_lengths) -> np.ndarray:
        """(n_prompts, n_models) estimated USD cost for prompts of the given character lengths."""
        tokens = estimate_tokens(np.atleast_1d(text_lengths), self.chars_per_token)
        return tokens[:, None] * self._per_token[None, :] + self._fixed[None, :]

    def columns(self, models: list[str]) -> CostModel:
        """The same prices for `models` (a reordering or a subset), in that order."""
        order = [self.models.index(m) for m in models]
        pick = lambda values: [values[i] for i in order]  # noqa: E731
        return CostModel(list(models), pick(self.input_price), pick(self.output_price), pick(self.output_tokens),
                         pick(self.mean_call_cost), self.chars_per_token)

    def to_dict(self) -> dict:
        """A list of models (order matters: it matches the head's columns)."""
        return {
            "chars_per_token": self.chars_per_token,
            "models": [
                {
                    "name": model,
                    "input_price": self.input_price[i],
                    "output_price": self.output_price[i],
                    "output_tokens": self.output_tokens[i],
                    "mean_call_cost": self.mean_call_cost[i],
                }
                for i, model in enumerate(self.models)
            ],
        }

    @classmethod
    def from_dict(cls, data: dict) -> CostModel:
        entries = data["models"]
        return cls(
            models=[e["name"] for e in entries],
            input_price=[e["input_price"] for e in entries],
            output_price=[e["output_price"] for e in entries],
            output_tokens=[int(e["output_tokens"]) for e in entries],
            mean_call_cost=[e["mean_call_cost"] for e in entries],
            chars_per_token=float(data.get("chars_per_token", DEFAULT_CHARS_PER_TOKEN)),
        )
