"""Client sampling: uniform without replacement, deterministic per round."""

from __future__ import annotations

from typing import Callable, Sequence, TypeVar

import numpy as np

__all__ = ["build_uniform_sampling_fn", "sample_clients"]

T = TypeVar("T")


def sample_clients(client_ids: Sequence[T], num_clients: int, round_num: int,
                   seed: int | None = 0, replace: bool = False) -> list[T]:
  """The clients of one round: `num_clients` drawn uniformly at random.

  The draw depends only on `(seed, round_num)`, so a resumed run samples the
  same clients as an uninterrupted one.

  Example:
    >>> sample_clients(["a", "b", "c", "d"], 2, round_num=0, seed=1)
    ['b', 'c']
  """
  n = len(client_ids)
  if num_clients < 1:
    raise ValueError(f"num_clients must be >= 1, got {num_clients}.")
  if not replace and num_clients > n:
    raise ValueError(f"Cannot sample {num_clients} distinct clients from {n}; lower "
                     f"clients_per_round or sample with replacement.")
  rng = np.random.default_rng([0 if seed is None else seed, round_num])
  picks = rng.choice(n, size=num_clients, replace=replace)
  return [client_ids[i] for i in picks]


def build_uniform_sampling_fn(sample_range: Sequence[T], replace: bool = False,
                              random_seed: int | None = None) -> Callable[[int, int], list[T]]:
  """TFF's `build_uniform_sampling_fn`: `fn(round_num, size) -> sample`.

  Example:
    >>> sampler = build_uniform_sampling_fn(train.client_ids, random_seed=0)
    >>> ids = sampler(round_num=3, size=10)
  """
  items = list(sample_range)

  def sampling_fn(round_num: int, size: int) -> list[T]:
    return sample_clients(items, size, round_num, random_seed, replace)
  return sampling_fn
