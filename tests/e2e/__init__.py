"""End-to-end tests: the CLI, the service as a real process, the notebook, MLflow's UI."""
