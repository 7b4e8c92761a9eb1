"""Templates for stateful federated processes.

Example:
  >>> process = fedjit.templates.IterativeProcess(initialize_fn, next_fn)
"""

from fedjit.templates._iterative_process import IterativeProcess

__all__ = ["IterativeProcess"]
