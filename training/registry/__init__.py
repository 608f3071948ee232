"""Stage 5, the registry: MLflow runs and models (`tracking`), and registered versions compared,
evaluated and promoted (`versions`)."""
