"""Which defence holds against which attack? Final test accuracy of FedAvg under
attack x defence x Byzantine fraction.

Workload (issue 15): the digits dataset (1,797 images of 8x8 pixels, 10
classes; `fedjit.simulation.datasets.digits`, bundled, so it runs offline;
Fashion-MNIST where Debian's `dataset-fashion-mnist` is installed is the
issue's first choice) split across 100 clients, Dirichlet(0.5) label skew
("noniid") or nearly IID (Dirichlet(1000), "iid"); softmax regression,
20 clients per round, 5 local epochs of SGD (lr 0.5, batch 8), 30 rounds,
unweighted FedAvg; test accuracy on all clients' held-out examples.

Attacks (`fedjit.simulation.attacks`): none, sign flip, scaling (x100),
Gaussian (std 10), ALIE, IPM (eps 0.1 and 100), and label flipping (a fixed
set of clients, the data attack). Defences (`fedjit.aggregators`): the plain
mean, coordinate median, trimmed mean (20%), Krum, Multi-Krum (m = n - f),
Bulyan, geometric median, centered clipping (radius 1), and NNM and bucketing
(s = 2) in front of the median. f, the number of Byzantine clients the
defences assume, is the expected count, fraction x 20.

The table gives, per defence, the accuracy under each attack (mean over
seeds), whether it stays within 2 points of its own clean run, and its
worst case over all attacks (the figure that matters, as in ByzFL).

Run:  python benchmarks/robustness.py                   (the full grid; long)
      python benchmarks/robustness.py --quick           (one seed, 20% only, noniid)
      python benchmarks/robustness.py --cache runs.jsonl  (resumable: finished runs are kept)
"""

from __future__ import annotations

import argparse
import json
import math
import os

import numpy as np

ATTACKS = ["none", "sign_flip", "scaling", "gaussian", "alie", "ipm_0.1", "ipm_100",
           "label_flip"]
DEFENCES = ["mean", "median", "trimmed_mean", "krum", "multi_krum", "bulyan",
            "geometric_median", "centered_clipping", "nnm_median", "bucketing_median"]
CLIENTS, PER_ROUND, ROUNDS, BATCH, EPOCHS, LR = 100, 20, 30, 8, 5, 0.5


def _defence(name: str, f: int):
  from fedjit import aggregators as agg
  f = max(f, 1)
  return {
      "mean": lambda: agg.UnweightedMeanFactory(),
      "median": lambda: agg.CoordinateMedianFactory(),
      "trimmed_mean": lambda: agg.TrimmedMeanFactory(trim_fraction=0.2),
      "krum": lambda: agg.KrumFactory(num_byzantine=f),
      "multi_krum": lambda: agg.KrumFactory(num_byzantine=f, num_selected=PER_ROUND - f),
      "bulyan": lambda: agg.BulyanFactory(num_byzantine=min(f, (PER_ROUND - 3) // 4)),
      "geometric_median": lambda: agg.GeometricMedianFactory(),
      "centered_clipping": lambda: agg.CenteredClippingFactory(radius=1.0),
      "nnm_median": lambda: agg.NearestNeighborMixingFactory(f, agg.CoordinateMedianFactory()),
      "bucketing_median": lambda: agg.BucketingFactory(2, agg.CoordinateMedianFactory(),
                                                       seed=0),
  }[name]()


def _batches(dataset) -> list:
  xs = np.stack([np.asarray(e["pixels"], np.float32) for e in dataset])  # in [0, 1]
  ys = np.asarray([int(e["label"]) for e in dataset], np.int32)
  out = []
  for _ in range(EPOCHS):
    out += [(xs[i:i + BATCH], ys[i:i + BATCH]) for i in range(0, len(ys), BATCH)]
  return out


def run(attack: str, defence: str, fraction: float, setting: str, seed: int) -> float:
  """Final test accuracy of one configuration."""
  import jax.numpy as jnp
  import optax
  import fedjit
  from fedjit import learning, simulation
  from fedjit.simulation import attacks, datasets

  alpha = 0.5 if setting == "noniid" else 1000.0
  train, test = datasets.digits.load_data(num_clients=CLIENTS, alpha=alpha, seed=seed)
  ids = list(train.client_ids)
  if attack == "label_flip" and fraction > 0:
    rng = np.random.default_rng(seed)
    bad = list(rng.choice(ids, int(round(fraction * CLIENTS)), replace=False))
    train = attacks.flip_labels(train, bad, num_classes=10)
  clients = {c: _batches(train.create_dataset_for_client(c)) for c in ids}
  tx = np.concatenate([np.stack([np.asarray(e["pixels"], np.float32) for e in
                                 test.create_dataset_for_client(c)]) for c in test.client_ids])
  ty = np.concatenate([[int(e["label"]) for e in test.create_dataset_for_client(c)]
                       for c in test.client_ids])
  model = learning.models.from_functions(
      lambda key: {"w": jnp.zeros((64, 10)), "b": jnp.zeros(10)},
      lambda p, x: x @ p["w"] + p["b"],
      lambda y, logits: optax.softmax_cross_entropy_with_integer_labels(logits, y),
      input_spec=((np.float32, [None, 64]), (np.int32, [None])))
  f = int(round(fraction * PER_ROUND))
  aggregator = _defence(defence, f)
  if attack not in ("none", "label_flip") and fraction > 0:
    name, scale = attack, None
    if attack.startswith("ipm_"):
      name, scale = "ipm", float(attack.split("_")[1])
    elif attack == "gaussian":
      scale = 10.0
    aggregator = attacks.ByzantineFactory(aggregator, name, fraction, scale=scale, seed=seed)
  trainer = learning.algorithms.build_unweighted_fed_avg(
      model, learning.optimizers.build_sgdm(LR), model_aggregator=aggregator)
  state = trainer.initialize()
  population = simulation.Population(trainer, clients)
  for r in range(ROUNDS):
    chosen = simulation.sample_clients(ids, PER_ROUND, r, seed)
    state = trainer.next(state, population.cohort(chosen)).state
  w = trainer.get_model_weights(state).trainable
  logits = tx @ np.asarray(w["w"]) + np.asarray(w["b"])
  accuracy = float(np.mean(np.argmax(logits, axis=1) == ty))
  return accuracy if math.isfinite(accuracy) else 0.0


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--quick", action="store_true")
  p.add_argument("--seeds", type=int, default=2)
  p.add_argument("--attacks", default=",".join(ATTACKS))
  p.add_argument("--defences", default=",".join(DEFENCES))
  p.add_argument("--json", default=None)
  p.add_argument("--cache", default=None,
                 help="a JSON-lines file of finished runs: each run is appended as it "
                      "ends and skipped when the file already has it (resume a long grid)")
  args = p.parse_args()
  done = {}
  if args.cache and os.path.exists(args.cache):
    with open(args.cache) as fh:
      for line in fh:
        if line.strip():
          record = json.loads(line)
          done[record["key"]] = record["accuracy"]

  def cached(attack, defence, fraction, setting, seed):
    key = f"{setting}|{defence}|{attack}|{fraction}|{seed}"
    if key not in done:
      done[key] = run(attack, defence, fraction, setting, seed)
      if args.cache:
        with open(args.cache, "a") as fh:
          fh.write(json.dumps({"key": key, "accuracy": done[key]}) + "\n")
    return done[key]

  fractions, settings, seeds = [0.0, 0.1, 0.2], ["noniid", "iid"], range(args.seeds)
  if args.quick:
    fractions, settings, seeds = [0.2], ["noniid"], range(1)
  attacks_, defences = args.attacks.split(","), args.defences.split(",")
  results = {}
  for setting in settings:
    for defence in defences:
      clean = np.mean([cached("none", defence, 0.0, setting, s) for s in seeds])
      results[(setting, defence, "none", 0.0)] = clean
      for fraction in fractions:
        if fraction == 0:
          continue
        for attack in attacks_:
          if attack == "none":
            continue
          results[(setting, defence, attack, fraction)] = float(np.mean(
              [cached(attack, defence, fraction, setting, s) for s in seeds]))
      print(f"done {setting} {defence}", flush=True)
  for setting in settings:
    for fraction in [x for x in fractions if x > 0]:
      print(f"\n{setting}, Byzantine fraction {fraction:.0%}: test accuracy (mean over "
            f"{len(seeds)} seed(s)); * = within 2 points of the defence's clean run")
      head = ["defence", "clean"] + [a for a in attacks_ if a != "none"] + ["worst"]
      print("| " + " | ".join(head) + " |")
      print("|" + "---|" * len(head))
      for defence in defences:
        clean = results[(setting, defence, "none", 0.0)]
        accs = [results[(setting, defence, a, fraction)] for a in attacks_ if a != "none"]
        cells = [f"{a:.3f}{'*' if a >= clean - 0.02 else ''}" for a in accs]
        print(f"| {defence} | {clean:.3f} | " + " | ".join(cells) + f" | {min(accs):.3f} |")
  if args.json:
    with open(args.json, "w") as fh:
      json.dump({"|".join(map(str, k)): v for k, v in results.items()}, fh)


if __name__ == "__main__":
  main()
