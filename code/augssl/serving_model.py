"""The file MLflow runs to rebuild a logged classifier (MLflow's "models from code"): the model
holds no pickled Python object, only this file, the package and the weights (read weights-only)."""

from mlflow.models import set_model

from augssl.serving import ImageClassifier

set_model(ImageClassifier())
