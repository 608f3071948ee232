"""MLflow "models from code" entry point for a router.

`router_ml.training.registry.tracking` logs this file by path, so the logged model holds source code and
the router directory, not a pickled Python object. Loading it (mlflow.pyfunc.load_model,
mlflow models serve) runs this file, which needs router-ml installed.
"""

import mlflow

from router_ml.serve.pyfunc import RouterPyfunc

mlflow.models.set_model(RouterPyfunc())
