"""Research code of benchmarks/ope_study.py (issue #21): onboarding a held-back model. The
estimators, reward models and exploration designs it studied now live in the product
(router_ml.core.off_policy, router_ml.policy.exploration)."""
