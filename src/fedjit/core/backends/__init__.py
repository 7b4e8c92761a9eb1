"""The backends that run federated computations: `vectorized` (the default) and
`reference`; both interpret the same graph (`interpreter.py`) and implement the
Backend protocol of `core/_context.py`. Importing this package registers them."""

from fedjit.core.backends.vectorized import VectorizedBackend, to_jax
from fedjit.core.backends.reference import ReferenceBackend

__all__ = ["ReferenceBackend", "VectorizedBackend", "to_jax"]
