"""Shared test fixtures."""

import pathlib
import sys

import pytest

import fedjit

ROOT = pathlib.Path(__file__).resolve().parents[1]

BACKENDS = {
    "reference": lambda: fedjit.backend("reference"),
    "vectorized": lambda: fedjit.backend("vectorized"),
    "vectorized-vmap": lambda: fedjit.backend("vectorized", client_map="vmap"),
    "vectorized-map-chunked": lambda: fedjit.backend("vectorized", client_map="map",
                                                     chunk_size=2),
}


@pytest.fixture(params=["reference", "vectorized"])
def backend(request):
  """Runs the test once on the reference and once on the (default) vectorized backend."""
  with BACKENDS[request.param]():
    yield request.param


@pytest.fixture(params=sorted(BACKENDS))
def any_backend(request):
  """Runs the test once under each backend configuration."""
  with BACKENDS[request.param]():
    yield request.param


def use_third_backend():
  """Imports tests/core/test_third_backend.py, which registers the "logging"
  backend (written only against the public Backend protocol); returns it."""
  import importlib.util
  name = "test_third_backend"
  if name not in sys.modules:
    path = ROOT / "tests" / "core" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
  return sys.modules[name]


def softmax3_model():
  """Softmax regression on 3 features, 2 classes, zero initial weights."""
  import jax.numpy as jnp
  import numpy as np
  import optax
  from fedjit import learning
  return learning.models.from_functions(
      lambda k: {"w": jnp.zeros((3, 2)), "b": jnp.zeros(2)},
      lambda p, x: x @ p["w"] + p["b"],
      lambda y, logits: optax.softmax_cross_entropy_with_integer_labels(logits, y),
      input_spec=((np.float32, [None, 3]), (np.int32, [None])))


def batched_clients(sizes, seed=0):
  """One list of (x, y) batches of 2 per size: x ~ N(0, 1) with 3 features,
  y = x[:, 0] > 0 (for `softmax3_model`)."""
  import numpy as np
  rng = np.random.default_rng(seed)
  out = []
  for n in sizes:
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    out.append([(x[i:i + 2], y[i:i + 2]) for i in range(0, n, 2)])
  return out


def load_example(name: str):
  """Imports examples/<name>.py as a module."""
  import importlib.util
  path = ROOT / "examples" / f"{name}.py"
  spec = importlib.util.spec_from_file_location(f"fedjit_example_{name}", path)
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module
  spec.loader.exec_module(module)
  return module
