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
  (i')  FedAvg written by hand in JAX as one jitted program (a scan over
        clients of a scan over batches, and the weighted mean): the cost of
        FedAvg's own structure, which the limit does not have;
  (ii)  a Python loop over clients calling a jitted local update;
  (iii) a Python loop over SGD steps calling a jitted step (how most
        simulators dispatch work);
  (iv)  fedjit with each client strategy forced (sequential map, chunked
        map, wide vmap), and with the cohort padded at once instead of
        streamed in chunks (`stream_chunk_mb=None`).
It also runs power-law client sizes with the same total examples (size
buckets), and counts compilations over 100 rounds with random cohorts.

Method: every timed side S is measured interleaved with the limit in one
process, so that both see the same machine load. After a warm-up call of S
(its compilation), S and the limit run alternately, S, limit, S, limit, ...,
`--repeats` times each (7 by default). For S the tables give the minimum and
the median seconds, and its ratio to the limit as min(S) / min(limit) and
median(S) / median(limit), over the limit runs interleaved with S. For
run_training the limit runs between rounds (from `print_fn`, outside the
round's own timing) over `--repeats` + 1 rounds, the first (compiling) one
dropped. With power-law sizes the limit is the same number of full batches
(total examples // 20) as one `lax.scan`.

Run:  python benchmarks/round_speed.py            (everything; about 45 minutes
                                                  on 2 idle cores, most of it
                                                  the MLP at 10,000 clients)
      python benchmarks/round_speed.py --quick    (10 and 1,000 clients, ~7 min)
Options:
  --repeats N          S/limit pairs per side (default 7).
  --only softmax,mlp   models to run; --clients 100,1000 cohort sizes;
  --sizes equal,power_law  client sizes; --sides fedjit,population,...
                       (fedjit = next(lists); also population, run_training,
                       per_client_loop, per_step_loop, unstreamed, map,
                       map_chunk8, vmap); --no-compilations skips the count.
  --compare REV        fedjit at git revision REV ("before", its src/
                       extracted with `git archive` into a temporary
                       directory) against this checkout's src/ ("after"):
                       each configuration runs before, after, before, after
                       (`--alternations` pairs, default 2), each in its own
                       process with PYTHONPATH at that src/, the samples of
                       each side pooled; prints both tables and, per row and
                       side, after ratio / before ratio. About 4x the time
                       of the same run without --compare.
  --json FILE          also write the results (every sample) here.
  e.g. the softmax 100/1,000 check against the commit before the redesign:
    python benchmarks/round_speed.py --compare 457f04b --only softmax \\
        --clients 100,1000 --sizes equal --sides fedjit,population --no-compilations
  (about 2 minutes on 2 idle cores).
Each (model, cohort) runs in its own process so that peak memory is its own.
The workload uses only fedjit API present at 457f04b, so that --compare can
run it against that revision.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

FEATURES, CLASSES, EXAMPLES, BATCH, LR = 784, 10, 100, 20, 0.1
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = ("softmax", "mlp")
COHORTS = (10, 100, 1000, 10000)
SIZES = ("equal", "power_law")
POWER_LAW_CLIENTS = 1000
STRATEGIES = ("unstreamed", "map", "map_chunk8", "vmap")
SIDES = ("fedjit", "population", "run_training", "hand_fedavg", "per_client_loop",
         "per_step_loop") + STRATEGIES
SIDE_ALIASES = {"lists": "fedjit"}
# Column titles of the sides, in table order.
TITLES = {"fedjit": "next(lists)", "population": "next(Population)",
          "run_training": "run_training", "hand_fedavg": "hand-written FedAvg",
          "per_client_loop": "per-client loop",
          "per_step_loop": "per-step loop", "unstreamed": "next(lists) one program",
          "map": "map", "map_chunk8": "map+chunk8", "vmap": "vmap"}


def _rss() -> int:
  with open("/proc/self/statm") as f:
    return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak() -> int:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _interleaved(fn, limit, repeats: int) -> dict:
  """Times `fn` and `limit` alternately (fn, limit, fn, limit, ...).

  Both are warm (compiled) already; returns each one's seconds per run.

  Example:
    >>> _interleaved(lambda: None, lambda: None, 2)["s"].__len__()
    2
  """
  s, lim = [], []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    s.append(time.perf_counter() - t)
    t = time.perf_counter()
    limit()
    lim.append(time.perf_counter() - t)
  return {"s": s, "limit": lim}


def stats(sample: dict) -> dict:
  """Minimum, median and ratios to the limit of one side's interleaved samples.

  Args:
    sample: `{"s": [seconds of S...], "limit": [seconds of the limit...]}`.

  Returns:
    `min`, `median` (of S), `limit_min`, `limit_median`, `ratio_min`
    (min(S) / min(limit)) and `ratio_median` (median(S) / median(limit)).

  Example:
    >>> stats({"s": [2.0, 3.0, 4.0], "limit": [1.0, 2.0, 2.0]})["ratio_median"]
    1.5
  """
  s, lim = sample["s"], sample["limit"]
  out = {"min": min(s), "median": statistics.median(s), "limit_min": min(lim),
         "limit_median": statistics.median(lim)}
  out["ratio_min"] = out["min"] / out["limit_min"]
  out["ratio_median"] = out["median"] / out["limit_median"]
  return out


def one(model_name: str, clients: int, sizes: str, repeats: int = 7,
        sides: tuple = SIDES) -> dict:
  """Measures one (model, cohort) configuration; returns a JSON-able dict.

  Every side in `sides` is timed `repeats` times interleaved with the limit;
  the dict holds each side's samples under `samples[side]` and, for older
  readers, each side's minimum under its own key (`fedjit`, `population`,
  ...) and the limit's overall minimum under `limit`.

  Example:
    >>> r = one("softmax", 10, "equal", repeats=2, sides=("fedjit",))
    >>> sorted(r["samples"])
    ['fedjit']
  """
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
  out = {"model": model_name, "clients": clients, "sizes": sizes, "steps": steps,
         "examples": total, "repeats": repeats, "fedjit_path": os.path.dirname(fedjit.__file__),
         "jax": jax.__version__, "jax_backend": jax.default_backend(), "samples": {},
         "compile": None, "peak_beyond_data_mb": None, "padded_data_mb": data_bytes / 2 ** 20}
  samples = out["samples"]

  def next_round(cohort):
    return lambda: jax.block_until_ready(trainer.next(state, cohort))

  # fedjit, default strategy, through the public API: the first call
  # compiles; peak memory is read before the limit's own copy of the data.
  if "fedjit" in sides:
    t = time.perf_counter()
    next_round(data)()
    first = time.perf_counter() - t
    out["peak_beyond_data_mb"] = (_peak() - rss_data) / 2 ** 20

  # (i) the limit: the same SGD steps as one compiled loop (with power-law
  # sizes, the same number of full batches), interleaved with every side.
  params = model.initial_weights.trainable

  @jax.jit
  def central(p, xs, ys):
    def step(p, b):
      g = jax.grad(loss)(p, b[0], b[1])
      return jax.tree_util.tree_map(lambda a, d: a - LR * d, p, g), None
    return jax.lax.scan(step, p, (xs, ys))[0]
  full = total // BATCH
  xs = jnp.asarray(x[:full * BATCH].reshape(full, BATCH, FEATURES))
  ys = jnp.asarray(y[:full * BATCH].reshape(full, BATCH))

  def limit():
    jax.block_until_ready(central(params, xs, ys))
  limit()

  if "fedjit" in sides:
    samples["fedjit"] = _interleaved(next_round(data), limit, repeats)
    out["compile"] = max(first - min(samples["fedjit"]["s"]), 0.0)

  # The same clients padded once into a device-resident Population, the
  # cohort passed to next() by id (a user's own loop over rounds).
  from fedjit import simulation
  client_data = simulation.ClientData.from_clients_and_fn(
      [str(i) for i in range(clients)],
      lambda cid: simulation.Dataset.from_batches(data[int(cid)]))
  if "population" in sides:
    population = simulation.Population(trainer, client_data)
    cohort = population.cohort(client_data.client_ids)
    next_round(cohort)()
    samples["population"] = _interleaved(next_round(cohort), limit, repeats)
    del population, cohort

  # fedjit's round loop (run_training: a Population, cohorts sampled per
  # round); the limit runs between rounds, from print_fn, which is called
  # after a round's seconds are taken.
  if "run_training" in sides:
    between = []

    def after_round(line):
      if line.startswith("round "):
        t = time.perf_counter()
        limit()
        between.append(time.perf_counter() - t)
    with tempfile.TemporaryDirectory() as tmp:
      history = simulation.run_training(trainer, client_data, rounds=repeats + 1,
                                        clients_per_round=clients, progress=False,
                                        output_dir=tmp, plot=False, print_fn=after_round).history
    samples["run_training"] = {"s": [h["seconds"] for h in history[1:]], "limit": between[1:]}

  if sizes == "equal":
    # (i') FedAvg written by hand in JAX as one jitted program: a scan over
    # clients, each a scan over its batches from the server weights, and the
    # weighted mean of the results. What the limit cannot show: the cost of
    # FedAvg's structure itself (every client restarts from the server
    # weights; nested loops), which any one-program FedAvg pays.
    per = counts[0] // BATCH
    xc_all = jnp.asarray(x.reshape(clients, per, BATCH, FEATURES))
    yc_all = jnp.asarray(y.reshape(clients, per, BATCH))
    nc_all = jnp.asarray(counts, jnp.float32)

    @jax.jit
    def hand_fedavg(p, xc, yc, nc):
      def client(acc, inputs):
        xi, yi, ni = inputs

        def step(q, b):
          g = jax.grad(loss)(q, b[0], b[1])
          return jax.tree_util.tree_map(lambda a, d: a - LR * d, q, g), None
        q = jax.lax.scan(step, p, (xi, yi))[0]
        return jax.tree_util.tree_map(lambda a, w: a + ni * w, acc, q), None
      zero = jax.tree_util.tree_map(jnp.zeros_like, p)
      total_w = jax.lax.scan(client, zero, (xc, yc, nc))[0]
      return jax.tree_util.tree_map(lambda a: a / jnp.sum(nc), total_w)

    def hand():
      jax.block_until_ready(hand_fedavg(params, xc_all, yc_all, nc_all))
    if "hand_fedavg" in sides:
      hand()
      samples["hand_fedavg"] = _interleaved(hand, limit, repeats)
    del xc_all, yc_all

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
    if "per_client_loop" in sides:
      per_client()
      samples["per_client_loop"] = _interleaved(per_client, limit, repeats)

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
    if "per_step_loop" in sides:
      per_step()
      samples["per_step_loop"] = _interleaved(per_step, limit, repeats)

    # (iv) fedjit's strategies, forced.
    for name, options in [("unstreamed", dict(stream_chunk_mb=None)),
                          ("map", dict(client_map="map")),
                          ("map_chunk8", dict(client_map="map", chunk_size=8)),
                          ("vmap", dict(client_map="vmap"))]:
      if name not in sides:
        continue
      if name == "vmap" and clients * (200_000 if model_name == "mlp" else 8_000) > 2e8:
        out[name] = None  # one model copy per client: beyond this machine's memory
        continue
      with fedjit.backend("vectorized", **options):
        next_round(data)()
        samples[name] = _interleaved(next_round(data), limit, repeats)

  for side, sample in samples.items():
    out[side] = min(sample["s"])
  out["limit"] = min(t for sample in samples.values() for t in sample["limit"]) if samples \
      else None
  return out


def compilations(rounds: int = 100) -> dict:
  """Compilations over a run with random cohorts from a power-law population.

  Example:
    >>> compilations(rounds=2)["rounds"]
    2
  """
  import jax
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
          "compilations_lists": backend.compilations(trainer.next) - with_loop,
          "fedjit_path": os.path.dirname(fedjit.__file__), "jax": jax.__version__,
          "jax_backend": jax.default_backend()}


def _subprocess(argv: list, src: str | None) -> dict | None:
  """Runs this file with `argv` in a new process; its last stdout line as JSON.

  With `src`, that directory comes first on the child's PYTHONPATH, so the
  child imports the fedjit found there.
  """
  env = dict(os.environ)
  if src is not None:
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
  done = subprocess.run([sys.executable, os.path.abspath(__file__)] + argv,
                        capture_output=True, text=True, env=env)
  if done.returncode != 0:
    print(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
    return None
  return json.loads(done.stdout.strip().splitlines()[-1])


def _merge(runs: list) -> dict:
  """One result from several processes' runs of a configuration: samples pooled.

  Compile time is the smallest, peak memory the largest of the runs.
  """
  merged = dict(runs[0], samples={})
  for r in runs:
    for side, sample in r["samples"].items():
      pooled = merged["samples"].setdefault(side, {"s": [], "limit": []})
      pooled["s"] += sample["s"]
      pooled["limit"] += sample["limit"]
  compiles = [r["compile"] for r in runs if r["compile"] is not None]
  peaks = [r["peak_beyond_data_mb"] for r in runs if r["peak_beyond_data_mb"] is not None]
  merged["compile"] = min(compiles) if compiles else None
  merged["peak_beyond_data_mb"] = max(peaks) if peaks else None
  merged["runs"] = len(runs)
  for side, sample in merged["samples"].items():
    merged[side] = min(sample["s"])
  limits = [t for sample in merged["samples"].values() for t in sample["limit"]]
  merged["limit"] = min(limits) if limits else None
  return merged


def _with_stats(r: dict) -> dict:
  r["stats"] = {side: stats(sample) for side, sample in r["samples"].items()}
  return r


def _pair(st: dict | None, a: str, b: str, digits: int) -> str:
  return "-" if st is None else f"{st[a]:.{digits}f} / {st[b]:.{digits}f}"


def _key(r: dict) -> tuple:
  return r["model"], r["clients"], r["sizes"]


def print_tables(results: list, comp: dict | None, title: str = "") -> None:
  """Prints the seconds and ratio-to-limit tables of `results` (with stats)."""
  if title:
    print(f"\n## {title}")
  if results:
    r0 = results[0]
    print(f"\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"jax {r0['jax']} on {r0['jax_backend']}; fedjit from {r0['fedjit_path']}; "
          f"{r0['repeats']} interleaved runs per side and process, "
          f"{r0.get('runs', 1)} process(es) per row")
  equal = [r for r in results if r["sizes"] == "equal"]
  present = [s for s in SIDES if any(s in r["stats"] for r in results)]
  print("\nSeconds per round, min / median (each side interleaved with the limit; the limit "
        "column pools the limit's runs of all sides)")
  head = (["model", "clients", "limit s"] + [f"{TITLES[s]} s" for s in present] +
          ["client updates/s", "compile s", "peak beyond data MB", "client data MB"])
  print("| " + " | ".join(head) + " |")
  print("|" + "---|" * len(head))
  for r in equal:
    lim = [t for sample in r["samples"].values() for t in sample["limit"]]
    row = [r["model"], r["clients"],
           f"{min(lim):.4f} / {statistics.median(lim):.4f}" if lim else "-"]
    row += [_pair(r["stats"].get(s), "min", "median", 4) for s in present]
    fed = r["stats"].get("fedjit")
    row += [f"{r['clients'] / fed['min']:.0f}" if fed else "-",
            "-" if r["compile"] is None else f"{r['compile']:.2f}",
            "-" if r["peak_beyond_data_mb"] is None else f"{r['peak_beyond_data_mb']:.0f}",
            f"{r['padded_data_mb']:.0f}"]
    print("| " + " | ".join(str(v) for v in row) + " |")
  print("\nRatio to the limit, min(S)/min(limit) / median(S)/median(limit) (the loops also "
        "against next(lists), min / median)")
  loops = [s for s in ("per_client_loop", "per_step_loop") if s in present and "fedjit" in present]
  head = (["model", "clients"] + [f"{TITLES[s]} / limit" for s in present] +
          [f"{TITLES[s]} / next(lists)" for s in loops])
  print("| " + " | ".join(head) + " |")
  print("|" + "---|" * len(head))
  for r in equal:
    row = [r["model"], r["clients"]]
    row += [_pair(r["stats"].get(s), "ratio_min", "ratio_median", 2) for s in present]
    fed = r["stats"].get("fedjit")
    for s in loops:
      st = r["stats"].get(s)
      row.append("-" if st is None or fed is None else
                 f"{st['min'] / fed['min']:.2f} / {st['median'] / fed['median']:.2f}")
    print("| " + " | ".join(str(v) for v in row) + " |")
  if "hand_fedavg" in present:
    mine = [s for s in ("fedjit", "population", "run_training") if s in present]
    print("\nAgainst FedAvg written by hand in one jit: (S / limit) / (hand-written / limit), "
          "min-based / median-based (1.00: no cost beyond FedAvg's own structure)")
    head = ["model", "clients", "hand-written / limit"] + [f"{TITLES[s]} / hand-written"
                                                           for s in mine]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in equal:
      h = r["stats"].get("hand_fedavg")
      row = [r["model"], r["clients"], _pair(h, "ratio_min", "ratio_median", 2)]
      for s in mine:
        st = r["stats"].get(s)
        row.append("-" if st is None or h is None else
                   f"{st['ratio_min'] / h['ratio_min']:.2f} / "
                   f"{st['ratio_median'] / h['ratio_median']:.2f}")
      print("| " + " | ".join(str(v) for v in row) + " |")
  by_key = {(r["model"], r["clients"]): r for r in equal}
  for r in results:
    if r["sizes"] == "equal":
      continue
    e = by_key.get((r["model"], r["clients"]))
    parts = []
    for side in ("fedjit", "population", "run_training"):
      st = r["stats"].get(side)
      if st is None:
        continue
      text = (f"{TITLES[side]} {st['min']:.3f} / {st['median']:.3f} s/round (min / median), "
              f"{st['ratio_min']:.2f} / {st['ratio_median']:.2f}x its limit")
      if e is not None and side in e["stats"]:
        text += f", {st['min'] / e['stats'][side]['min']:.2f}x equal sizes (min)"
      parts.append(text)
    peak = r["peak_beyond_data_mb"]
    print(f"\nPower-law sizes, {r['model']}, {r['clients']} clients, {r['examples']} examples: "
          + "; ".join(parts) + ("" if peak is None else f"; peak beyond data {peak:.0f} MB"))
  if comp is not None:
    print(f"\nCompilations over {comp['rounds']} rounds of {comp['cohort']} random clients from "
          f"3,000 with power-law sizes: {comp['compilations']} with run_training (population "
          f"padded once), {comp['compilations_lists']} more with lists passed to next()")


def print_change(before: list, after: list) -> None:
  """Prints after ratio / before ratio per row and side, min- and median-based."""
  b = {_key(r): r for r in before}
  rows = [(r, b[_key(r)]) for r in after if _key(r) in b]
  present = [s for s in SIDES if any(s in r["stats"] and s in o["stats"] for r, o in rows)]
  print("\n## Change: after ratio to the limit / before ratio (min-based / median-based; "
        "above 1 is slower than before)")
  head = ["model", "clients", "sizes"] + [TITLES[s] for s in present]
  print("| " + " | ".join(head) + " |")
  print("|" + "---|" * len(head))
  worse = []
  for r, o in rows:
    row = [r["model"], r["clients"], r["sizes"]]
    for s in present:
      if s not in r["stats"] or s not in o["stats"]:
        row.append("-")
        continue
      cmin = r["stats"][s]["ratio_min"] / o["stats"][s]["ratio_min"]
      cmed = r["stats"][s]["ratio_median"] / o["stats"][s]["ratio_median"]
      row.append(f"{cmin:.2f} / {cmed:.2f}")
      if cmin > 1.05 or cmed > 1.05:
        worse.append(f"{r['model']} {r['clients']} {r['sizes']} {TITLES[s]}: "
                     f"{cmin:.2f} / {cmed:.2f}")
    print("| " + " | ".join(str(v) for v in row) + " |")
  print("\nWorse than before by more than 5% (min-based or median-based): "
        + ("; ".join(worse) if worse else "none"))


def _source_at(rev: str, into: str) -> str:
  """Extracts src/ of git revision `rev` of this checkout into `into`; its path."""
  archive = subprocess.run(["git", "-C", ROOT, "archive", "--format=tar", rev, "src"],
                           capture_output=True, check=False)
  if archive.returncode != 0:
    raise SystemExit(f"--compare expected a git revision of {ROOT}, got {rev!r}: "
                     f"{archive.stderr.decode().strip()}")
  subprocess.run(["tar", "-x", "-C", into], input=archive.stdout, check=True)
  return os.path.join(into, "src")


def _names(text: str | None, allowed: tuple, flag: str, aliases: dict | None = None) -> tuple:
  if text is None:
    return allowed
  names = [(aliases or {}).get(n.strip(), n.strip()) for n in text.split(",") if n.strip()]
  unknown = [n for n in names if n not in allowed]
  if unknown:
    raise SystemExit(f"{flag} expected names from {', '.join(allowed)} (comma-separated), "
                     f"got {', '.join(unknown)}.")
  return tuple(n for n in allowed if n in names)


def main() -> None:
  parser = argparse.ArgumentParser(
      description=__doc__.splitlines()[0],
      epilog="See the module docstring for the method.")
  parser.add_argument("--quick", action="store_true", help="10 and 1,000 clients only")
  parser.add_argument("--repeats", type=int, default=7,
                      help="interleaved S/limit runs per side (default 7)")
  parser.add_argument("--only", default=None, help="models, e.g. softmax or softmax,mlp")
  parser.add_argument("--clients", default=None, help="cohort sizes, e.g. 100,1000")
  parser.add_argument("--sizes", default=None, help="client sizes: equal, power_law or equal,power_law")
  parser.add_argument("--sides", default=None,
                      help=f"sides to time: {', '.join(SIDES)} (lists = fedjit)")
  parser.add_argument("--no-compilations", action="store_true",
                      help="skip counting compilations over 100 rounds")
  parser.add_argument("--compare", default=None, metavar="REV",
                      help="also run fedjit at git revision REV, alternating with this checkout")
  parser.add_argument("--alternations", type=int, default=2,
                      help="with --compare: before/after process pairs per row (default 2)")
  parser.add_argument("--one", nargs=3, metavar=("MODEL", "CLIENTS", "SIZES"),
                      help=argparse.SUPPRESS)
  parser.add_argument("--count-compilations", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--json", default=None, help="also write the results here")
  args = parser.parse_args()
  if args.repeats < 1 or args.alternations < 1:
    raise SystemExit(f"--repeats and --alternations expected positive counts, got "
                     f"{args.repeats} and {args.alternations}.")
  sides = _names(args.sides, SIDES, "--sides", SIDE_ALIASES)
  if args.one:
    print(json.dumps(one(args.one[0], int(args.one[1]), args.one[2], args.repeats, sides)))
    return
  if args.count_compilations:
    print(json.dumps(compilations()))
    return
  models = _names(args.only, MODELS, "--only")
  sizes = _names(args.sizes, SIZES, "--sizes")
  cohorts = (10, 1000) if args.quick else COHORTS
  if args.clients is not None:
    try:
      cohorts = tuple(int(c) for c in args.clients.split(",") if c.strip())
    except ValueError:
      raise SystemExit(f"--clients expected comma-separated integers, got {args.clients!r}.")
  configs = [(m, c, "equal") for m in models for c in cohorts if "equal" in sizes]
  configs += [(m, POWER_LAW_CLIENTS, "power_law") for m in models
              if "power_law" in sizes and (args.clients is None or POWER_LAW_CLIENTS in cohorts)]
  configs.sort(key=lambda k: (MODELS.index(k[0]), k[2] != "equal", k[1]))
  passthrough = ["--repeats", str(args.repeats), "--sides", ",".join(sides)]

  tmp = tempfile.mkdtemp(prefix="round_speed_") if args.compare else None
  try:
    versions = ([("before", _source_at(args.compare, tmp)), ("after", os.path.join(ROOT, "src"))]
                if args.compare else [("", None)])
    passes = args.alternations if args.compare else 1
    results = {label: [] for label, _ in versions}
    for model, clients, size in configs:
      runs = {label: [] for label, _ in versions}
      for _ in range(passes):
        for label, src in versions:
          r = _subprocess(["--one", model, str(clients), size] + passthrough, src)
          if r is not None:
            runs[label].append(r)
            print(json.dumps({"version": label, **{k: v for k, v in r.items()
                                                  if k != "samples"}}), flush=True)
      for label, _ in versions:
        if runs[label]:
          results[label].append(_with_stats(_merge(runs[label])))
    comps = {label: (None if args.no_compilations else _subprocess(["--count-compilations"], src))
             for label, src in versions}
  finally:
    if tmp is not None:
      shutil.rmtree(tmp, ignore_errors=True)

  for label, _ in versions:
    title = (f"{label}: fedjit at {args.compare}" if label == "before" else
             f"{label}: fedjit of this checkout" if label else "")
    print_tables(results[label], comps[label], title)
  if args.compare:
    print_change(results["before"], results["after"])
  if args.json:
    with open(args.json, "w") as f:
      if args.compare:
        json.dump({"compare": args.compare,
                   **{label: {"results": results[label], "compilations": comps[label]}
                      for label, _ in versions}}, f, indent=1)
      else:
        json.dump({"results": results[""], "compilations": comps[""]}, f, indent=1)


if __name__ == "__main__":
  main()
