"""Clients split across several devices give the single-device results.

Runs in a subprocess with four CPU devices
(`XLA_FLAGS=--xla_force_host_platform_device_count=4`).
"""

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json, os
    import numpy as np, jax, jax.numpy as jnp, optax, fedjit
    from fedjit import learning
    assert jax.local_device_count() == 4
    model = learning.models.from_functions(
        lambda k: {"w": jnp.zeros((3, 2)), "b": jnp.zeros(2)},
        lambda p, x: x @ p["w"] + p["b"],
        lambda y, l: optax.softmax_cross_entropy_with_integer_labels(l, y),
        input_spec=((np.float32, [None, 3]), (np.int32, [None])))
    rng = np.random.default_rng(0)
    def client(n):
      x = rng.normal(size=(n, 3)).astype(np.float32)
      y = (x[:, 0] > 0).astype(np.int32)
      return [(x[i:i + 2], y[i:i + 2]) for i in range(0, n, 2)]
    out = {}
    for name, sizes in [("equal", [6] * 9), ("power_law", [1, 3, 5, 8, 2, 30, 4, 1, 7] * 8),
                        ("streamed", [1, 3, 5, 8, 2, 30, 4, 1, 7] * 16)]:
      data = [client(n) for n in sizes]
      trainer = learning.algorithms.build_weighted_fed_avg(model, learning.optimizers.build_sgdm(0.3))
      with fedjit.backend("reference"):
        ref = trainer.next(trainer.initialize(), data).state.global_model_weights.trainable["w"]
      for options in [dict(client_map="map"), dict(client_map="map", chunk_size=3),
                      dict(client_map="vmap"), dict(client_map="map", devices=None),
                      dict(client_map="map", stream_chunk_mb=1e-6)]:
        backend = fedjit.VectorizedBackend(**options)
        with fedjit.backend(backend):
          got = trainer.next(trainer.initialize(), data).state.global_model_weights.trainable["w"]
        key = name + ":" + ",".join(f"{k}={v}" for k, v in options.items())
        out[key] = float(np.abs(got - ref).max())
      # With 144 clients and tiny chunks the round really was streamed.
      # (`backend`, the last, shares its programs with the client_map="map"
      # one, which compiled the one-program round once; streaming adds a
      # chunk and a final program.)
      out[name + ":streamed"] = backend.compilations(trainer.next) > 1
      # The round really is split across the devices.
      from fedjit.core.backends.vectorized.conversions import to_vectorized
      state = trainer.initialize()
      reps = [to_vectorized(t, a) for t, a in zip(
          [trainer.next.type_signature.parameter[0], trainer.next.type_signature.parameter[1]],
          [state, data])]
      text = str(jax.make_jaxpr(lambda *r: fedjit.VectorizedBackend().trace(trainer.next, list(r)))(*reps))
      out[name + ":uses_shard_map"] = "shard_map" in text
    print(json.dumps(out))
""")


def test_sharded_rounds_equal_reference():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
             JAX_PLATFORMS="cpu")
  done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                        env=env, timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  results = json.loads(done.stdout.strip().splitlines()[-1])
  assert results.pop("equal:uses_shard_map") and results.pop("power_law:uses_shard_map")
  assert results.pop("streamed:uses_shard_map")
  # 144 clients stream with tiny chunks; 9 clients (fewer than two chunks
  # of 16) do not.
  assert results.pop("streamed:streamed") and not results.pop("equal:streamed")
  results.pop("power_law:streamed")
  for key, difference in results.items():
    assert difference < 1e-5, (key, difference)
