"""router-ml's training pipeline, in stages: outcomes -> labels -> embeddings -> head -> artifact.

    data/      the outcomes contract, importers, demo data (stage 1)
    embed/     the embedding cache, static distillation, ONNX export (stage 2)
    fit/       the pipeline, head selection, the learned verifier (stage 3)
    evaluate/  metrics, evaluation, comparison, replay, reports (stage 4)
    registry/  MLflow tracking, registered versions (stage 5)
    loop/      retraining from the audit log

The folder sits at the top of the repository but installs as `router_ml.training`
(pyproject.toml), so no other distribution's `training` package can clash with it:

    from router_ml.training.fit.pipeline import TrainConfig, train

It uses `router_ml` (core, policy and the audit format); `router_ml` never imports it.
"""
