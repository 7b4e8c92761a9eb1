"""The simulation layer: client datasets, federated datasets, partitioners,
client sampling and the training loop.

Example:
  >>> train, test = fedjit.simulation.datasets.digits.load_data(num_clients=20)
  >>> result = fedjit.simulation.run_training(
  ...     trainer, train.preprocess(lambda ds: ds.batch(20)), rounds=30,
  ...     clients_per_round=10, output_dir="runs/digits")
"""

import importlib as _importlib

from fedjit.simulation._client_data import ClientData, UnknownClientError
from fedjit.simulation._dataset import Dataset
from fedjit.simulation._population import Population
from fedjit.simulation._sampling import build_uniform_sampling_fn, sample_clients
from fedjit.simulation._training import (TrainingResult, TrainingWarning,
                                         build_central_evaluation, flatten_metrics,
                                         plot_curves, run_training)

__all__ = ["ClientData", "Dataset", "Population", "UnknownClientError", "build_uniform_sampling_fn",
           "sample_clients", "TrainingResult", "build_central_evaluation", "flatten_metrics",
           "plot_curves", "run_training", "TrainingWarning", "attacks", "datasets", "partitioners"]


def __getattr__(name):
  if name in ("attacks", "datasets", "partitioners"):
    return _importlib.import_module(f"fedjit.simulation.{name}")
  raise AttributeError(f"module 'fedjit.simulation' has no attribute {name!r}")


def __dir__():
  return sorted(__all__)
