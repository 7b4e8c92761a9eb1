"""What does an aggregator cost a round? Each aggregator's FedAvg round against the
same round with the plain mean, interleaved in one process.

Workload: round_speed.py's (EMNIST-shaped clients, 100 examples, batch 20,
softmax regression or a 784-200-200-10 MLP), at 100 and 1,000 clients, the
cohort a device-resident Population (so the ratio is the aggregator's, not
the input copy's). Weighted aggregators run in `build_weighted_fed_avg` and
are compared with `MeanFactory()`; unweighted ones (DP, robust, attacks) in
`build_unweighted_fed_avg`, compared with `UnweightedMeanFactory()`.

Method: after a warm-up (compilation) of both, the aggregator's round and the
baseline's run alternately, `--repeats` times each (7 by default); the table
gives min(aggregator) / min(baseline) and median / median, and for robust
aggregators the extra memory they need (the stacked updates, clients x
model size, 4 bytes each).

Run:  python benchmarks/aggregator_cost.py                      (everything)
      python benchmarks/aggregator_cost.py --only softmax --clients 100
      python benchmarks/aggregator_cost.py --aggregators dp_fixed,median
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

FEATURES, CLASSES, EXAMPLES, BATCH, LR = 784, 10, 100, 20, 0.1


def aggregators(clients: int) -> dict:
  """name -> (weighted, factory builder); robust ones only if available."""
  import fedjit
  from fedjit import aggregators as agg
  from fedjit import learning
  out = {
      "dp_fixed": (False, lambda: agg.DifferentiallyPrivateFactory.gaussian_fixed(
          noise_multiplier=1.0, clients_per_round=clients, clip=1.0)),
      "dp_adaptive": (False, lambda: agg.DifferentiallyPrivateFactory.gaussian_adaptive(
          noise_multiplier=1.0, clients_per_round=clients)),
      "dp_aggregator": (False, lambda: learning.dp_aggregator(1.0, clients)),
      "local_dp": (False, lambda: agg.DifferentiallyPrivateFactory.local_gaussian(
          1.0, clip=1.0, noise_seed=0)),
      "compression_8bit": (True, lambda: learning.compression_aggregator(bits=8, noise_seed=0)),
      "secure_sum": (True, lambda: agg.MeanFactory(
          value_sum_factory=getattr(agg, "SecureSumFactory")(1.0))),
      "validation": (True, lambda: getattr(agg, "UpdateValidationFactory")(norm_bound=10.0)),
  }
  robust = {"median": "CoordinateMedianFactory", "trimmed_mean": "TrimmedMeanFactory",
            "krum": "KrumFactory", "geometric_median": "GeometricMedianFactory"}
  for name, cls in robust.items():
    factory = getattr(agg, cls, None)
    if factory is None:
      continue
    if name == "trimmed_mean":
      out[name] = (False, lambda f=factory: f(trim_fraction=0.1))
    elif name == "krum":
      out[name] = (False, lambda f=factory: f(num_byzantine=max(1, clients // 10)))
    else:
      out[name] = (False, lambda f=factory: f())
  del fedjit
  return out


def one(model_name: str, clients: int, names: list, repeats: int) -> list:
  """Times each aggregator against its baseline; returns JSON-able rows."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  import optax
  import fedjit
  from fedjit import aggregators as agg
  from fedjit import learning, simulation

  rng = np.random.default_rng(0)
  x = rng.random((clients * EXAMPLES, FEATURES), dtype=np.float32)
  y = rng.integers(0, CLASSES, clients * EXAMPLES).astype(np.int32)
  data = [[(x[c * EXAMPLES + i:c * EXAMPLES + i + BATCH], y[c * EXAMPLES + i:c * EXAMPLES + i + BATCH])
           for i in range(0, EXAMPLES, BATCH)] for c in range(clients)]

  def init(key):
    if model_name == "softmax":
      return {"w": jnp.zeros((FEATURES, CLASSES)), "b": jnp.zeros(CLASSES)}
    k = jax.random.split(key, 3)
    g = jax.nn.initializers.glorot_uniform()
    return {"w1": g(k[0], (FEATURES, 200)), "b1": jnp.zeros(200), "w2": g(k[1], (200, 200)),
            "b2": jnp.zeros(200), "w3": g(k[2], (200, CLASSES)), "b3": jnp.zeros(CLASSES)}

  def apply(p, xb):
    if model_name == "softmax":
      return xb @ p["w"] + p["b"]
    h = jax.nn.relu(xb @ p["w1"] + p["b1"])
    h = jax.nn.relu(h @ p["w2"] + p["b2"])
    return h @ p["w3"] + p["b3"]

  model = learning.models.from_functions(
      init, apply, lambda yb, logits: optax.softmax_cross_entropy_with_integer_labels(logits, yb),
      input_spec=((np.float32, [None, FEATURES]), (np.int32, [None])))
  sgd = learning.optimizers.build_sgdm(LR)
  builders = {True: learning.algorithms.build_weighted_fed_avg,
              False: learning.algorithms.build_unweighted_fed_avg}
  baselines = {True: agg.MeanFactory(), False: agg.UnweightedMeanFactory()}
  params = sum(int(np.prod(np.shape(l))) for l in jax.tree_util.tree_leaves(
      model.initial_weights.trainable))

  def round_fn(weighted, factory):
    trainer = builders[weighted](model, sgd, model_aggregator=factory)
    population = simulation.Population(trainer, data)
    cohort = population.cohort(list(range(clients)))
    state = trainer.initialize()
    run = lambda: jax.block_until_ready(trainer.next(state, cohort).state)
    run()
    return run

  base = {w: round_fn(w, baselines[w]) for w in (True, False)}
  rows = []
  table = aggregators(clients)
  for name in names:
    if name not in table:
      continue
    weighted, make = table[name]
    try:
      fn = round_fn(weighted, make())
    except Exception as e:  # e.g. an optional dependency missing
      rows.append({"model": model_name, "clients": clients, "aggregator": name,
                   "error": f"{type(e).__name__}: {e}"})
      continue
    s, b = [], []
    for _ in range(repeats):
      t = time.perf_counter(); fn(); s.append(time.perf_counter() - t)
      t = time.perf_counter(); base[weighted](); b.append(time.perf_counter() - t)
    rows.append({"model": model_name, "clients": clients, "aggregator": name,
                 "weighted": weighted, "s": s, "baseline": b,
                 "ratio_min": min(s) / min(b),
                 "ratio_median": statistics.median(s) / statistics.median(b),
                 "stacked_mb": clients * params * 4 / 2 ** 20 if name in (
                     "median", "trimmed_mean", "krum", "geometric_median") else 0.0})
  return rows


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--only", default="softmax,mlp")
  p.add_argument("--clients", default="100,1000")
  p.add_argument("--aggregators", default=None, help="comma-separated names (default: all)")
  p.add_argument("--repeats", type=int, default=7)
  p.add_argument("--json", default=None)
  p.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.one:
    names = args.aggregators.split(",")
    print(json.dumps(one(args.one[0], int(args.one[1]), names, args.repeats)))
    return
  rows = []
  for model_name in args.only.split(","):
    for clients in (int(c) for c in args.clients.split(",")):
      names = args.aggregators or ",".join(aggregators(clients))
      # Each (model, cohort) in its own process, so memory is its own.
      out = subprocess.run([sys.executable, __file__, "--one", model_name, str(clients),
                            "--aggregators", names, "--repeats", str(args.repeats)],
                           capture_output=True, text=True, check=False)
      if out.returncode != 0:
        print(out.stderr[-2000:], file=sys.stderr)
        continue
      rows += json.loads(out.stdout.strip().splitlines()[-1])
  print("| model | clients | aggregator | round / plain mean (min / median) | stacked updates MB |")
  print("|---|---|---|---|---|")
  for r in rows:
    if "error" in r:
      print(f"| {r['model']} | {r['clients']} | {r['aggregator']} | {r['error']} | |")
      continue
    print(f"| {r['model']} | {r['clients']} | {r['aggregator']} | {r['ratio_min']:.2f} / "
          f"{r['ratio_median']:.2f} | {r['stacked_mb']:.0f} |")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(rows, f)


if __name__ == "__main__":
  main()
