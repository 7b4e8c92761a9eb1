"""The vectorized backend (the default): one compiled program per round.

Modules, in the order a call reaches them: `backend.py` (`VectorizedBackend.run`),
`conversions.py` (Python values to padded arrays; `layouts.py` chooses bucket
layouts, `cohorts.py` holds every cohort representation), `intrinsics.py`
(the intrinsics over cohorts, traced under jit), `loops.py` (the loops over
clients, with sharding), and `streaming.py` (large cohorts in chunks).
"""

from fedjit.core.backends.vectorized.backend import VectorizedBackend, to_jax

__all__ = ["VectorizedBackend", "to_jax"]
