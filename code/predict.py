"""Predictions of a trained model over a folder of images.

    python code/predict.py <MLflow run id or model URI> <images folder> [--output predictions]

The folder holds images, or one subfolder per class (then the accuracy is printed). Writes
<output>.csv (path, class, probabilities) and <output>.npy (the probabilities).
"""

from __future__ import annotations

import augssl  # noqa: F401  (first: it sets the OpenMP wait policy before torch loads)

# isort: split

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from augssl.config import ConfigError
from augssl.engine.model_export import MLFLOW_MODELS
from augssl.inference import list_images, load_model, model_uri, predict, write_predictions


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="predict.py", description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a run id, or an MLflow model URI (runs:/<id>/model, "
                        "models:/<name>/<version>) or folder")
    parser.add_argument("images", type=Path, help="folder of images or of class subfolders")
    parser.add_argument("--output", type=Path, default=Path("predictions"),
                        help="output path without suffix (default: ./predictions)")
    parser.add_argument("--which", choices=sorted(MLFLOW_MODELS), default="final",
                        help="with a run id: its final model or its best on validation")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if args.device == "cuda" or (
        args.device == "auto" and torch.cuda.is_available()) else "cpu")
    try:
        loaded = load_model(model_uri(args.model, args.which), device)
        paths, labels = list_images(args.images, loaded.classes)
        probabilities = predict(loaded, paths, args.batch_size)
    except ConfigError as error:
        print(f"predict: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    csv_path, npy_path = write_predictions(args.output, paths, probabilities, loaded.classes)
    print(f"predict: {len(paths)} images -> {csv_path}, {npy_path}")
    if labels is not None:
        accuracy = float((probabilities.argmax(1) == np.asarray(labels)).mean())
        print(f"predict: accuracy {accuracy:.4f} over {len(labels)} labelled images")


if __name__ == "__main__":
    main()
