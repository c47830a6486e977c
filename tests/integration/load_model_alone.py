"""Loads an MLflow model where the project cannot be imported, predicts, and reports what the
model's own code imports. Run it as

    PYTHONPATH=<site-packages> python -S tests/integration/load_model_alone.py <model uri> \
        <images.npy> <report.json>

(-S: the site-packages' .pth files, among them the project's editable install, are not read).
"""

import ast
import importlib.metadata
import importlib.util
import json
import sys
from pathlib import Path

import mlflow
import numpy as np


def imported_distributions(package: Path) -> dict[str, list[str]]:
    """The modules that the loaded modules of ``package`` import (standard library and the
    package itself aside), each with the distributions that install it."""
    names = set()
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if not file or not Path(file).is_relative_to(package):
            continue
        for node in ast.walk(ast.parse(Path(file).read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split(".")[0])
    owners = importlib.metadata.packages_distributions()
    return {name: owners[name] for name in sorted(names - set(sys.stdlib_module_names)
                                                  - {"augssl"})}


if __name__ == "__main__":
    uri, images, report = sys.argv[1:]
    importable_before = importlib.util.find_spec("augssl") is not None
    model = mlflow.pyfunc.load_model(uri)
    probabilities = model.predict(np.load(images))
    package = Path(sys.modules["augssl"].__file__).parent
    Path(report).write_text(json.dumps({
        "importable_before": importable_before, "package": str(package),
        "columns": list(probabilities.columns), "probabilities": probabilities.values.tolist(),
        "imports": imported_distributions(package)}))
