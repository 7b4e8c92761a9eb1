"""The vectorized backend (the default): one compiled program per round.

Modules, in the order a call reaches them: `backend.py` (`VectorizedBackend.run`),
`conversions.py` (Python values to Cohorts; `layouts.py` chooses bucket
layouts, `cohorts.py` defines the Cohort, the one representation of a
`{T}@CLIENTS` value), `intrinsics.py` (the intrinsics over Cohorts, traced
under jit), `loops.py` (the one client loop, with sharding), and
`streaming.py` (large cohorts in chunks).
"""

from fedjit.core.backends.vectorized.backend import VectorizedBackend, to_jax

__all__ = ["VectorizedBackend", "to_jax"]
