"""The core layer: the predictor. Outcomes become labels, prompts become embeddings, a
head turns embeddings into each model's probability of success, an artifact packages
it, and a `Router` turns a prompt into a `Decision`.

Imports nothing from `router_ml.policy` or `router_ml.serve` (a test walks the imports).
"""
