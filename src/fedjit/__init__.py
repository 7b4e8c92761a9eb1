"""fedjit: federated learning and computation on JAX.

A typed Federated Core (`federated_computation`, `jax_computation`,
intrinsics) whose programs compile into one XLA program per round, with the
names and semantics of TensorFlow Federated.

Example:
  >>> import numpy as np, fedjit
  >>> @fedjit.federated_computation(fedjit.FederatedType(np.float32, fedjit.CLIENTS))
  ... def get_average_temperature(client_temperatures):
  ...   return fedjit.federated_mean(client_temperatures)
  >>> get_average_temperature([68.5, 70.3, 69.8])
  np.float32(69.53334)

Importing fedjit has one side effect: if Keras is not imported yet, it sets
the environment variable `KERAS_BACKEND=jax`, so that Keras models run on
Keras's JAX backend (Keras picks its backend once, when first imported).
Import fedjit before Keras, or set `KERAS_BACKEND=jax` yourself; if Keras
was imported first on another backend, fedjit warns. Nothing else (no
backend, device or JAX setting) is changed at import.
"""

import os as _os
import sys as _sys

# Keras models run on Keras's JAX backend: select it if Keras is not imported yet
# (fedjit.learning.models explains what to do when it already was).
if "keras" not in _sys.modules:
  _os.environ["KERAS_BACKEND"] = "jax"
else:
  _keras_backend = getattr(getattr(_sys.modules["keras"], "backend", None), "backend",
                           lambda: "jax")()
  if _keras_backend != "jax":
    import warnings as _warnings
    _warnings.warn(
        f"Keras was imported before fedjit and runs on its {_keras_backend!r} backend; "
        f"fedjit's Keras models need 'jax': import fedjit before keras, or set "
        f"KERAS_BACKEND=jax.", RuntimeWarning, stacklevel=2)

from fedjit import templates
from fedjit.core import *  # noqa: F401,F403  (the curated core API)
from fedjit.core import __all__ as _core_all
from fedjit.core import BACKEND_API as _backend_api

# The seam for writing a backend stays in fedjit.core (fedjit.core.Ops, ...):
# a user's `fedjit.` namespace holds what programs use.
for _name in _backend_api:
  del globals()[_name]
del _name
_core_all = [n for n in _core_all if n not in _backend_api]

__version__ = "0.1.0"

__all__ = list(_core_all) + ["templates", "aggregators", "learning", "simulation", "deploy",
                               "__version__"]


def __getattr__(name):
  # `fedjit.aggregators`, `fedjit.learning`, `fedjit.simulation` and
  # `fedjit.deploy` are imported on first use, so the Federated Core alone
  # stays light.
  if name in ("aggregators", "learning", "simulation", "deploy"):
    import importlib
    return importlib.import_module(f"fedjit.{name}")
  raise AttributeError(f"module 'fedjit' has no attribute {name!r}")
