"""Off-policy evaluation from a routing log: estimators, reward models, exploration designs and
onboarding, as studied by benchmarks/ope_study.py (issue #21). Pure functions on arrays."""
