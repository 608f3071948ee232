"""Tests of router_ml.core: the predictor (catalog, labels, heads, artifact, decisions, embedders)."""
