"""Federated datasets. Loaders never download silently: pass `download=True`
(or put the file in the cache folder, `$FEDJIT_DATA_DIR`).

Also `ClientData` and `TestClientData` (a small in-memory ClientData), under
the names TFF gives them here.

Example:
  >>> train, test = fedjit.simulation.datasets.emnist.load_data(download=True)
  >>> toy = fedjit.simulation.datasets.TestClientData({'a': [1.0, 2.0], 'b': [3.0]})
"""

import importlib

from fedjit.simulation._client_data import ClientData, TestClientData

_MODULES = ("emnist", "shakespeare", "synthetic", "mnist", "fashion_mnist", "digits", "leaf")

__all__ = list(_MODULES) + ["ClientData", "TestClientData"]


def __getattr__(name):
  if name in _MODULES:
    return importlib.import_module(f"fedjit.simulation.datasets.{name}")
  raise AttributeError(f"module 'fedjit.simulation.datasets' has no attribute {name!r}")


def __dir__():
  return sorted(__all__)
