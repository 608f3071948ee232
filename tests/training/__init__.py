"""Tests of router_ml.training: outcomes, importers, the pipeline, evaluation, registry, retraining."""
