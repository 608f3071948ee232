"""Tests of router_ml.serve: the service, audit store, HTTP app and gateway, in process."""
