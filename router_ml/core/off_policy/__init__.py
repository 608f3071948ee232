"""Off-policy evaluation: judging a router from a log in which each request shows only the
outcome of the model it was served by.

    estimators     DR (the default), IPS and the others; bootstrap intervals; the predicted
                   width of an interval before any outcome is read; AIQ of many curves at once
    reward_models  every model's expected outcome on each logged request, cross-fitted
                   (the DR estimator's direct part)

Pure numpy on arrays: the training side (`router-ml evaluate --audit`, retraining's
judgement) and the service (its live estimate) both use it. The choice of estimator,
reward model and intervals was made by benchmarks/ope_study.py (docs/benchmarks.md).
"""
