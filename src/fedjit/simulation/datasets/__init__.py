"""Federated datasets. Loaders never download silently: pass `download=True`
(or put the file in the cache folder, `$FEDJIT_DATA_DIR`).

Example:
  >>> train, test = fedjit.simulation.datasets.emnist.load_data(download=True)
"""

import importlib

_MODULES = ("emnist", "shakespeare", "synthetic", "mnist", "fashion_mnist", "digits", "leaf")

__all__ = list(_MODULES)


def __getattr__(name):
  if name in _MODULES:
    return importlib.import_module(f"fedjit.simulation.datasets.{name}")
  raise AttributeError(f"module 'fedjit.simulation.datasets' has no attribute {name!r}")
