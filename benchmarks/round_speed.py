"""How fast is a federated round? fedjit against the compute limit and loops.

Workload (issue "Simulation at scale"): EMNIST-shaped data (784 features, 10
classes), 100 examples per client, batch 20, one local epoch of SGD with
learning rate 0.1, weighted FedAvg, for (a) softmax regression and (b) a
784-200-200-10 ReLU MLP, at 10, 100, 1,000 and 10,000 clients per round,
through fedjit's public API (`build_weighted_fed_avg(model, ...)`,
`next(state, client_data)` with client data as lists of batches, and as a
cohort of a device-resident `simulation.Population`; and `run_training`).

Side by side, in the same process and on the same data:
  (i)   limit: the same SGD steps as one jitted `lax.scan` over all batches;
  (ii)  a Python loop over clients calling a jitted local update;
  (iii) a Python loop over SGD steps calling a jitted step (how most
        simulators dispatch work);
  (iv)  fedjit with each client strategy forced (sequential map, chunked
        map, wide vmap), and with the cohort padded at once instead of
        streamed in chunks (`stream_chunk_mb=None`).
It also runs power-law client sizes with the same total examples (size
buckets), and counts compilations over 100 rounds with random cohorts.

Run:  python benchmarks/round_speed.py            (everything, ~10 minutes)
      python benchmarks/round_speed.py --quick    (10 and 1,000 clients)
Each (model, cohort) runs in its own process so that peak memory is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

FEATURES, CLASSES, EXAMPLES, BATCH, LR = 784, 10, 100, 20, 0.1


def _rss() -> int:
  with open("/proc/self/statm") as f:
    return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak() -> int:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _timed(fn, repeats: int) -> float:
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - t)
  return best


def one(model_name: str, clients: int, strategies: bool, sizes: str) -> dict:
  """Measures one (model, cohort) configuration; returns a JSON-able dict."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  import optax

  import fedjit
  from fedjit import learning

  rng = np.random.default_rng(0)
  if sizes == "equal":
    counts = np.full(clients, EXAMPLES)
  else:  # power law (lognormal, as LEAF), same total number of examples
    raw = rng.lognormal(0.0, 1.2, clients)
    counts = np.maximum(1, np.round(raw / raw.sum() * clients * EXAMPLES)).astype(int)
  total = int(counts.sum())
  x = rng.random((total, FEATURES), dtype=np.float32)
  y = rng.integers(0, CLASSES, total).astype(np.int32)
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
  data = [[(x[s + i:s + min(i + BATCH, n)], y[s + i:s + min(i + BATCH, n)])
           for i in range(0, n, BATCH)] for s, n in zip(starts, counts)]
  steps = sum(len(c) for c in data)
  data_bytes = x.nbytes + y.nbytes
  rss_data = _rss()

  def init(key):
    glorot = jax.nn.initializers.glorot_uniform()
    if model_name == "softmax":
      return {"w": jnp.zeros((FEATURES, CLASSES)), "b": jnp.zeros(CLASSES)}
    k = jax.random.split(key, 3)
    return {"w1": glorot(k[0], (FEATURES, 200)), "b1": jnp.zeros(200),
            "w2": glorot(k[1], (200, 200)), "b2": jnp.zeros(200),
            "w3": glorot(k[2], (200, CLASSES)), "b3": jnp.zeros(CLASSES)}

  def apply(p, xb):
    if model_name == "softmax":
      return xb @ p["w"] + p["b"]
    h = jax.nn.relu(xb @ p["w1"] + p["b1"])
    h = jax.nn.relu(h @ p["w2"] + p["b2"])
    return h @ p["w3"] + p["b3"]

  def loss(p, xb, yb):
    return optax.softmax_cross_entropy_with_integer_labels(apply(p, xb), yb).mean()

  model = learning.models.from_functions(
      init, apply, lambda yb, logits: optax.softmax_cross_entropy_with_integer_labels(logits, yb),
      input_spec=((np.float32, [None, FEATURES]), (np.int32, [None])))
  trainer = learning.algorithms.build_weighted_fed_avg(model, learning.optimizers.build_sgdm(LR))
  state = trainer.initialize()
  # Best of several runs, for fedjit and the loops alike: short rounds are
  # noisier (best of 20 at <= 100 clients, 3 at 1,000, 2 at 10,000).
  repeats = 20 if clients <= 100 else 3 if clients <= 1000 else 2
  out = {"model": model_name, "clients": clients, "sizes": sizes, "steps": steps,
         "examples": total}

  # fedjit, default strategy, through the public API.
  t = time.perf_counter()
  trainer.next(state, data)
  first = time.perf_counter() - t
  out["fedjit"] = _timed(lambda: trainer.next(state, data), repeats)
  out["compile"] = max(first - out["fedjit"], 0.0)
  out["peak_beyond_data_mb"] = (_peak() - rss_data) / 2 ** 20
  out["padded_data_mb"] = data_bytes / 2 ** 20

  # The same clients padded once into a device-resident Population, the
  # cohort passed to next() by id (a user's own loop over rounds).
  from fedjit import simulation
  client_data = simulation.ClientData.from_clients_and_fn(
      [str(i) for i in range(clients)],
      lambda cid: simulation.Dataset.from_batches(data[int(cid)]))
  population = simulation.Population(trainer, client_data)
  cohort = population.cohort(client_data.client_ids)
  trainer.next(state, cohort)
  out["population"] = _timed(lambda: trainer.next(state, cohort), repeats)
  del population, cohort

  # fedjit's round loop (run_training: a Population, cohorts sampled per round).
  import tempfile
  with tempfile.TemporaryDirectory() as tmp:
    history = simulation.run_training(trainer, client_data, rounds=5 if clients <= 1000 else 3,
                                      clients_per_round=clients, progress=False,
                                      output_dir=tmp, plot=False).history
  out["run_training"] = float(np.median([h["seconds"] for h in history[1:]]))
  if sizes != "equal":
    return out

  params = model.initial_weights.trainable

  # (i) the limit: the same SGD steps as one compiled loop.
  @jax.jit
  def central(p, xs, ys):
    def step(p, b):
      g = jax.grad(loss)(p, b[0], b[1])
      return jax.tree_util.tree_map(lambda a, d: a - LR * d, p, g), None
    return jax.lax.scan(step, p, (xs, ys))[0]
  xs = jnp.asarray(x.reshape(steps, BATCH, FEATURES))
  ys = jnp.asarray(y.reshape(steps, BATCH))
  jax.block_until_ready(central(params, xs, ys))
  out["limit"] = _timed(lambda: jax.block_until_ready(central(params, xs, ys)), repeats)
  del xs, ys

  # (ii) per-client Python loop calling a jitted local update.
  @jax.jit
  def local_update(p, xc, yc):
    def step(p, b):
      g = jax.grad(loss)(p, b[0], b[1])
      return jax.tree_util.tree_map(lambda a, d: a - LR * d, p, g), None
    return jax.lax.scan(step, p, (xc, yc))[0]

  def weighted_sum(acc, new, n):
    scaled = jax.tree_util.tree_map(lambda b: n * b, new)
    return scaled if acc is None else jax.tree_util.tree_map(jnp.add, acc, scaled)

  def per_client():
    total_w, acc = 0.0, None
    for s, n in zip(starts, counts):
      xc = x[s:s + n].reshape(-1, BATCH, FEATURES)
      yc = y[s:s + n].reshape(-1, BATCH)
      acc = weighted_sum(acc, local_update(params, xc, yc), n)
      total_w += n
    return jax.block_until_ready(jax.tree_util.tree_map(lambda a: a / total_w, acc))
  per_client()
  out["per_client_loop"] = _timed(per_client, repeats)

  # (iii) per-step Python loop calling a jitted SGD step.
  @jax.jit
  def sgd_step(p, xb, yb):
    g = jax.grad(loss)(p, xb, yb)
    return jax.tree_util.tree_map(lambda a, d: a - LR * d, p, g)

  def per_step():
    total_w, acc = 0.0, None
    for batches in data:
      p = params
      for xb, yb in batches:
        p = sgd_step(p, xb, yb)
      n = sum(len(b[1]) for b in batches)
      acc = weighted_sum(acc, p, n)
      total_w += n
    return jax.block_until_ready(jax.tree_util.tree_map(lambda a: a / total_w, acc))
  per_step()
  out["per_step_loop"] = _timed(per_step, repeats)

  # (iv) fedjit's strategies, forced.
  if strategies:
    for name, options in [("unstreamed", dict(stream_chunk_mb=None)),
                          ("map", dict(client_map="map")),
                          ("map_chunk8", dict(client_map="map", chunk_size=8)),
                          ("vmap", dict(client_map="vmap"))]:
      if name == "vmap" and clients * (200_000 if model_name == "mlp" else 8_000) > 2e8:
        out[name] = None  # one model copy per client: beyond this machine's memory
        continue
      with fedjit.backend("vectorized", **options):
        trainer.next(state, data)
        out[name] = _timed(lambda: trainer.next(state, data), repeats)
  return out


def compilations(rounds: int = 100) -> dict:
  """Compilations over a run with random cohorts from a power-law population."""
  import jax.numpy as jnp
  import numpy as np
  import optax

  import fedjit
  from fedjit import learning
  rng = np.random.default_rng(1)
  sizes = np.maximum(1, rng.lognormal(3.5, 1.0, 3000).astype(int))
  population = []
  for n in sizes:
    xs = rng.random((n, FEATURES), dtype=np.float32)
    ys = rng.integers(0, CLASSES, n).astype(np.int32)
    population.append([(xs[i:i + BATCH], ys[i:i + BATCH]) for i in range(0, n, BATCH)])
  model = learning.models.from_functions(
      lambda k: {"w": jnp.zeros((FEATURES, CLASSES)), "b": jnp.zeros(CLASSES)},
      lambda p, xb: xb @ p["w"] + p["b"],
      lambda yb, logits: optax.softmax_cross_entropy_with_integer_labels(logits, yb),
      input_spec=((np.float32, [None, FEATURES]), (np.int32, [None])))
  from fedjit import simulation
  trainer = learning.algorithms.build_weighted_fed_avg(model, learning.optimizers.build_sgdm(LR))
  client_data = simulation.ClientData.from_clients_and_fn(
      [str(i) for i in range(len(population))],
      lambda cid: simulation.Dataset.from_batches(population[int(cid)]))
  backend = fedjit.get_backend()
  simulation.run_training(trainer, client_data, rounds=rounds, clients_per_round=100,
                          progress=False)
  with_loop = backend.compilations(trainer.next)
  # The same with lists of datasets passed to next() directly: cohorts over
  # 4 MB are streamed (chunk programs, one per power of two of client
  # length), smaller ones bucketed on their own, so shapes vary more.
  state = trainer.initialize()
  for r in range(rounds):
    cohort = [population[i] for i in rng.choice(len(population), 100, replace=False)]
    state = trainer.next(state, cohort).state
  return {"rounds": rounds, "cohort": 100, "compilations": with_loop,
          "compilations_lists": backend.compilations(trainer.next) - with_loop}


def _fmt(v, unit="", digits=3):
  return "-" if v is None else (f"{v:.{digits}f}{unit}" if isinstance(v, float) else str(v))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--one", nargs=3, metavar=("MODEL", "CLIENTS", "SIZES"))
  parser.add_argument("--json", default=None, help="also write the results here")
  args = parser.parse_args()
  if args.one:
    print(json.dumps(one(args.one[0], int(args.one[1]), True, args.one[2])))
    return
  import jax
  cohorts = [10, 1000] if args.quick else [10, 100, 1000, 10000]
  results = []
  for model in ("softmax", "mlp"):
    for c in cohorts + [("power", 1000)]:
      sizes, c = ("power_law", c[1]) if isinstance(c, tuple) else ("equal", c)
      done = subprocess.run([sys.executable, __file__, "--one", model, str(c), sizes],
                            capture_output=True, text=True)
      if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
        continue
      r = json.loads(done.stdout.strip().splitlines()[-1])
      results.append(r)
      print(json.dumps(r), flush=True)
  comp = compilations()
  print(f"\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"jax {jax.__version__} on {jax.default_backend()}")
  head = ["model", "clients", "limit s", "next(lists) s", "next(Population) s",
          "run_training s/round", "client updates/s", "compile s",
          "peak beyond data MB", "client data MB", "next(lists) / limit",
          "next(Population) / limit", "run_training / limit",
          "per-client loop / next(lists)", "per-step loop / next(lists)",
          "next(lists) one program s", "map s", "map+chunk8 s", "vmap s"]
  print("| " + " | ".join(head) + " |")
  print("|" + "---|" * len(head))
  for r in results:
    if r["sizes"] != "equal":
      continue
    row = [r["model"], r["clients"], _fmt(r["limit"], digits=4), _fmt(r["fedjit"], digits=4),
           _fmt(r["population"], digits=4), _fmt(r["run_training"], digits=4),
           f"{r['clients'] / r['fedjit']:.0f}",
           f"{r['compile']:.2f}", f"{r['peak_beyond_data_mb']:.0f}",
           f"{r['padded_data_mb']:.0f}",
           f"{r['fedjit'] / r['limit']:.2f}", f"{r['population'] / r['limit']:.2f}",
           f"{r['run_training'] / r['limit']:.2f}",
           f"{r['per_client_loop'] / r['fedjit']:.2f}",
           f"{r['per_step_loop'] / r['fedjit']:.2f}", _fmt(r.get("unstreamed")), _fmt(r.get("map")),
           _fmt(r.get("map_chunk8")), _fmt(r.get("vmap"))]
    print("| " + " | ".join(str(v) for v in row) + " |")
  equal = {(r["model"], r["clients"]): r for r in results if r["sizes"] == "equal"}
  for r in results:
    if r["sizes"] == "equal" or (r["model"], r["clients"]) not in equal:
      continue
    e = equal[(r["model"], r["clients"])]
    print(f"\nPower-law sizes, {r['model']}, {r['clients']} clients, {r['examples']} examples: "
          f"next(lists) {r['fedjit']:.3f} s/round vs {e['fedjit']:.3f} s with equal sizes "
          f"({r['fedjit'] / e['fedjit']:.2f}x); next(Population) {r['population']:.3f} vs "
          f"{e['population']:.3f} s ({r['population'] / e['population']:.2f}x); run_training "
          f"{r['run_training']:.3f} vs {e['run_training']:.3f} s "
          f"({r['run_training'] / e['run_training']:.2f}x); peak beyond data "
          f"{r['peak_beyond_data_mb']:.0f} MB")
  print(f"\nCompilations over {comp['rounds']} rounds of {comp['cohort']} random clients from "
        f"3,000 with power-law sizes: {comp['compilations']} with run_training (population "
        f"padded once), {comp['compilations_lists']} more with lists passed to next()")
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"results": results, "compilations": comp}, f, indent=1)


if __name__ == "__main__":
  main()
