"""Embedders: prompts in, unit-length vectors out. See `base` for the contract and registry."""

from router_ml.core.embedders.base import EMBEDDERS, Embedder, embedder_class, make_embedder
from router_ml.core.embedders.cache import CachedEmbedder
from router_ml.core.embedders.files import DEFAULT_MODEL
from router_ml.core.embedders.truncation import DEFAULT_TRUNCATION, TRUNCATIONS

__all__ = ["CachedEmbedder", "DEFAULT_MODEL", "DEFAULT_TRUNCATION", "EMBEDDERS", "Embedder", "TRUNCATIONS",
           "embedder_class", "make_embedder"]
