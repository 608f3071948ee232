"""The policy layer: rules, response checks, cascades and fallbacks around the router.

Imports only `router_ml.core`; the service (`router_ml.serve`) and the offline replay
(`router_ml.training.evaluate.replay`) both plan with `router_ml.policy.plans` and run plans
through `router_ml.policy.cascade`.
"""

from router_ml.policy.file import Policy, load_policy, policy_from_dict

__all__ = ["Policy", "load_policy", "policy_from_dict"]
