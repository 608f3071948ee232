"""Tests of router_ml.policy: rules, checks, the verifier, cascades and plans."""
