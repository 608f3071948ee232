"""router-ml's training pipeline: outcomes -> labels -> embeddings -> head -> artifact.

Entry point: `training.pipeline.train(TrainConfig(...))`, or `router-ml train`.
"""
