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
"""

from fedjit import templates
from fedjit.core import *  # noqa: F401,F403  (the curated core API)
from fedjit.core import __all__ as _core_all

__version__ = "0.1.0"

__all__ = list(_core_all) + ["templates", "__version__"]
