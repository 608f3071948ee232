"""Tests of router_ml.integrations (LiteLLM) in process."""
