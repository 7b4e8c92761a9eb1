"""Privacy accounting for the DP aggregators, with Google's `dp-accounting`.

A DP aggregator releases one noised sum per round; what that costs in
privacy depends only on public quantities — the noise multiplier σ, how the
round's clients are sampled, and how many rounds have run — never on the
data. `PrivacyAccountant` turns those into ε for a given δ with
`dp_accounting`'s RDP accountant and, as a cross-check, its PLD accountant.

The round count lives in the aggregator's state (it is counted inside the
compiled round), so a checkpoint restores it and a resumed run reports the
same ε as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
from typing import Any

__all__ = ["PrivacyAccountant"]

SAMPLINGS = ("without_replacement", "poisson", "local")


def _dp_accounting():
  try:
    import dp_accounting
  except ImportError as e:
    raise ImportError(
        "Privacy accounting needs Google's dp-accounting package, which is not "
        "installed. Install it with: pip install 'fedjit[privacy]' (or pip install "
        "dp-accounting).") from e
  return dp_accounting


def _positive(name: str, value: Any, integer: bool = False) -> None:
  kind = "an int" if integer else "a number"
  ok = isinstance(value, int) if integer else isinstance(value, (int, float))
  if isinstance(value, bool) or not ok or not value > 0 or (
      not integer and not math.isfinite(value)):
    raise ValueError(f"PrivacyAccountant expects {name} to be {kind} > 0, got {value!r}.")


@dataclasses.dataclass(frozen=True)
class PrivacyAccountant:
  """(ε, δ) of a DP aggregator after some rounds, from `dp-accounting`.

  One round is a Gaussian mechanism with noise multiplier σ (noise stddev
  over the ℓ2 clip of one client's contribution) on a sample of the
  population; `rounds` rounds are its `rounds`-fold composition:

  * `sampling="without_replacement"` (default): a fixed number
    `clients_per_round` of distinct clients out of `population_size`, as
    `fedjit.simulation.run_training` samples them. The event is
    `SampledWithoutReplacementDpEvent(population_size, clients_per_round,
    GaussianDpEvent(σ / 2))` under the replace-one neighbouring relation
    (the only one dp-accounting's RDP supports for it): replacing one
    client moves the clipped sum by up to 2·clip, so the noise is σ/2 times
    that sensitivity. dp-accounting's PLD accountant does not support this
    event, so only RDP is available (`method="pld"` raises).
  * `sampling="poisson"`: every client takes part independently with
    probability q = clients_per_round / population_size; the event is
    `PoissonSampledDpEvent(q, GaussianDpEvent(σ))` under add-or-remove-one.
    This is the guarantee only if clients really are sampled that way
    (`run_training` does not; sample them yourself).

  * `sampling="local"`: local DP, each client noising its own clipped
    value (`DifferentiallyPrivateFactory.local_gaussian`). The guarantee is
    each client's own, against everyone including the server, for the
    rounds it takes part in (`rounds` counts them; at most all rounds): the
    event is `GaussianDpEvent(σ / 2)` per round (the client's value moves
    by up to 2·clip when it is replaced: a Gaussian mechanism of
    sensitivity 2·clip and noise σ·clip), with no amplification by
    sampling. `population_size` and `clients_per_round` are not used.

  Both the RDP and the PLD value are upper bounds on the same true ε; PLD
  is tighter, RDP cheaper.

  A DP aggregator built with `accountant=PrivacyAccountant(population_size,
  delta)` fills in `noise_multiplier` and `clients_per_round` itself and
  reports `epsilon` (RDP) in every round's measurements; for adaptive
  clipping σ is the *effective* noise multiplier (the value noise and the
  clipped-count noise together, Andrew et al. 2021).

  Args:
    population_size: the number of clients sampled from (N).
    delta: the δ of the (ε, δ) guarantee, in (0, 1); usually below 1/N.
    sampling: "without_replacement" or "poisson".
    noise_multiplier: σ, ≥ 0 (0 means no privacy: ε is infinite); filled
      in by the DP factory when left None.
    clients_per_round: the clients per round (or expected, for Poisson);
      filled in by the DP factory when left None.

  Raises:
    ValueError: for a bad argument (the message says which and why).
    ImportError: if dp-accounting is not installed (`pip install
      'fedjit[privacy]'`).

  Example:
    >>> acc = PrivacyAccountant(population_size=100_000, delta=1e-5,
    ...                         sampling="poisson", noise_multiplier=1.0,
    ...                         clients_per_round=1000)
    >>> round(acc.epsilon(1000), 2), round(acc.epsilon(1000, method="pld"), 2)
    (2.1, 1.83)
  """

  population_size: int
  delta: float = 1e-5
  sampling: str = "without_replacement"
  noise_multiplier: float | None = None
  clients_per_round: int | float | None = None

  def __post_init__(self):
    _dp_accounting()  # an ImportError saying what to install, before any round runs
    _positive("population_size", self.population_size, integer=True)
    if isinstance(self.delta, bool) or not isinstance(self.delta, (int, float)) or not (
        0 < self.delta < 1):
      raise ValueError(f"PrivacyAccountant expects delta in (0, 1), such as 1e-5 (below "
                       f"1 / population_size), got {self.delta!r}.")
    if self.sampling not in SAMPLINGS:
      raise ValueError(f"PrivacyAccountant expects sampling to be one of {SAMPLINGS}, "
                       f"got {self.sampling!r}.")
    if self.noise_multiplier is not None and (
        isinstance(self.noise_multiplier, bool)
        or not isinstance(self.noise_multiplier, (int, float))
        or not self.noise_multiplier >= 0):
      raise ValueError(f"PrivacyAccountant expects noise_multiplier >= 0, got "
                       f"{self.noise_multiplier!r}.")
    if self.clients_per_round is not None:
      _positive("clients_per_round", self.clients_per_round,
                integer=self.sampling == "without_replacement")
      if self.clients_per_round > self.population_size:
        raise ValueError(
            f"PrivacyAccountant: clients_per_round ({self.clients_per_round}) cannot "
            f"exceed population_size ({self.population_size}).")

  def bind(self, noise_multiplier: float, clients_per_round: int | float) -> PrivacyAccountant:
    """This accountant with the mechanism's σ and clients per round.

    The DP factories call it; a value already given must agree.

    Raises:
      ValueError: if a given value differs from the factory's.

    Example:
      >>> PrivacyAccountant(1000).bind(1.0, 10).noise_multiplier
      1.0
    """
    for name, value in (("noise_multiplier", noise_multiplier),
                        ("clients_per_round", clients_per_round)):
      mine = getattr(self, name)
      if mine is not None and mine != value:
        raise ValueError(f"The PrivacyAccountant was given {name}={mine!r}, but the DP "
                         f"aggregator uses {value!r}. Leave it out of the accountant; "
                         f"the aggregator fills it in.")
    if isinstance(clients_per_round, float) and clients_per_round.is_integer() and (
        self.sampling == "without_replacement"):
      clients_per_round = int(clients_per_round)
    return dataclasses.replace(self, noise_multiplier=float(noise_multiplier),
                               clients_per_round=clients_per_round)

  def _require_bound(self):
    if self.noise_multiplier is None or self.clients_per_round is None:
      raise ValueError("This PrivacyAccountant has no noise_multiplier or "
                       "clients_per_round yet: pass both, or use the accountant of a "
                       "DP factory (factory.accountant).")

  def dp_event(self, rounds: int = 1) -> Any:
    """The `dp_accounting.DpEvent` of `rounds` rounds.

    Example:
      >>> PrivacyAccountant(1000, sampling="poisson", noise_multiplier=1.0,
      ...                   clients_per_round=10).dp_event(2)
      SelfComposedDpEvent(event=PoissonSampledDpEvent(sampling_probability=0.01,
      event=GaussianDpEvent(noise_multiplier=1.0)), count=2)
    """
    self._require_bound()
    dpa = _dp_accounting()
    if self.sampling == "local":
      return dpa.SelfComposedDpEvent(dpa.GaussianDpEvent(self.noise_multiplier / 2),
                                     int(rounds))
    if self.sampling == "poisson":
      one = dpa.PoissonSampledDpEvent(self.clients_per_round / self.population_size,
                                      dpa.GaussianDpEvent(self.noise_multiplier))
    else:
      one = dpa.SampledWithoutReplacementDpEvent(
          self.population_size, int(self.clients_per_round),
          dpa.GaussianDpEvent(self.noise_multiplier / 2))
    return dpa.SelfComposedDpEvent(one, int(rounds))

  def _relation(self):
    rel = _dp_accounting().NeighboringRelation
    # Local DP: the event already holds the 2·clip sensitivity (σ / 2), a
    # plain Gaussian mechanism, which is what add-or-remove computes for it.
    return rel.REPLACE_ONE if self.sampling == "without_replacement" else rel.ADD_OR_REMOVE_ONE

  def epsilon(self, rounds: int, method: str = "rdp") -> float:
    """ε after `rounds` rounds, for this accountant's δ.

    Args:
      rounds: the number of noised rounds so far (≥ 0; 0 gives 0).
      method: "rdp" (Rényi DP, `dp_accounting.rdp.RdpAccountant`) or "pld"
        (privacy loss distributions, `dp_accounting.pld.PLDAccountant`;
        Poisson sampling only).

    Returns:
      ε as a Python float (`inf` when σ = 0).

    Raises:
      ValueError: for a negative `rounds` or an unknown `method`.
      NotImplementedError: for PLD with sampling without replacement.
      ImportError: if dp-accounting is not installed.

    Example:
      >>> acc = PrivacyAccountant(100_000, delta=1e-5, sampling="poisson",
      ...                         noise_multiplier=1.0, clients_per_round=1000)
      >>> round(acc.epsilon(10), 3), round(acc.epsilon(10, method="pld"), 3)
      (1.035, 0.38)
    """
    try:
      if isinstance(rounds, bool):
        raise TypeError
      rounds = operator.index(rounds)
    except TypeError:
      raise ValueError(f"epsilon expects rounds to be an int >= 0, got {rounds!r}.") from None
    if rounds < 0:
      raise ValueError(f"epsilon expects rounds >= 0, got {rounds}.")
    if method not in ("rdp", "pld"):
      raise ValueError(f"epsilon expects method 'rdp' or 'pld', got {method!r}.")
    self._require_bound()
    if rounds == 0:
      return 0.0
    if self.noise_multiplier == 0:
      return math.inf
    if method == "pld":
      if self.sampling == "without_replacement":
        raise NotImplementedError(
            "dp-accounting's PLD accountant does not support sampling without "
            "replacement (SampledWithoutReplacementDpEvent); use method='rdp', or "
            "sampling='poisson' if clients are sampled that way.")
      return self._pld_epsilon(rounds)
    return self._rdp_epsilon(rounds)

  @functools.lru_cache(maxsize=4096)
  def _pld_epsilon(self, rounds: int) -> float:
    dpa = _dp_accounting()
    accountant = dpa.pld.PLDAccountant(self._relation())
    accountant.compose(self.dp_event(rounds))
    return float(accountant.get_epsilon(self.delta))

  @functools.cached_property
  def _one_round_rdp(self):
    """(orders, RDP of one round at each order), or None where the library
    does not expose the curve."""
    dpa = _dp_accounting()
    accountant = dpa.rdp.RdpAccountant(neighboring_relation=self._relation())
    accountant.compose(self.dp_event(1))
    rdp = getattr(accountant, "_rdp", None)
    orders = getattr(accountant, "_orders", None)
    return None if rdp is None or orders is None else (list(orders), list(rdp))

  def _rdp_epsilon(self, rounds: int) -> float:
    # RDP composes additively: `rounds` rounds have `rounds` times one round's
    # curve, so the curve is computed once and ε read off it with
    # dp_accounting.rdp.compute_epsilon (exactly what RdpAccountant does for a
    # SelfComposedDpEvent), cheap enough for every round.
    dpa = _dp_accounting()
    curve = self._one_round_rdp
    if curve is None:  # another dp-accounting version: compose afresh
      accountant = dpa.rdp.RdpAccountant(neighboring_relation=self._relation())
      accountant.compose(self.dp_event(rounds))
      return float(accountant.get_epsilon(self.delta))
    orders, rdp = curve
    eps, _ = dpa.rdp.compute_epsilon(orders, [rounds * r for r in rdp], self.delta)
    return float(eps)

  def report(self, rounds: int) -> dict[str, float]:
    """`{'rounds', 'delta', 'epsilon', 'epsilon_pld'}` after `rounds` rounds
    (`epsilon_pld` only for Poisson sampling).

    Example:
      >>> acc.report(10)   # the accountant of the `epsilon` example
      {'rounds': 10, 'delta': 1e-05, 'epsilon': 1.0353..., 'epsilon_pld': 0.3799...}
    """
    out = {"rounds": int(rounds), "delta": float(self.delta),
           "epsilon": self.epsilon(rounds)}
    if self.sampling == "poisson":
      out["epsilon_pld"] = self.epsilon(rounds, "pld")
    return out
