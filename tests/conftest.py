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


@pytest.fixture(params=sorted(BACKENDS))
def any_backend(request):
  """Runs the test once under each backend configuration."""
  with BACKENDS[request.param]():
    yield request.param


def load_example(name: str):
  """Imports examples/<name>.py as a module."""
  import importlib.util
  path = ROOT / "examples" / f"{name}.py"
  spec = importlib.util.spec_from_file_location(f"fedjit_example_{name}", path)
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module
  spec.loader.exec_module(module)
  return module
