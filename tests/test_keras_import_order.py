"""Keras imported before fedjit on another backend: one line says what to do,
at import and again when a Keras model is wrapped."""

import os
import subprocess
import sys

import pytest

pytest.importorskip("keras")

PROGRAM = """
import warnings
warnings.simplefilter("always")
import keras
import fedjit
import numpy as np
model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
try:
  fedjit.learning.from_keras_model(
      model, keras.losses.MeanSquaredError(), ((np.float32, [None, 2]), (np.float32, [None, 1])))
except RuntimeError as e:
  print("ERROR:", str(e).splitlines()[0])
"""


def test_keras_on_another_backend_is_named_with_what_to_do():
  env = dict(os.environ, KERAS_BACKEND="numpy", JAX_PLATFORMS="cpu")
  run = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True,
                       text=True, timeout=120)
  assert "runs on its 'numpy' backend" in run.stderr
  assert "import fedjit before keras, or set KERAS_BACKEND=jax" in run.stderr
  error = [l for l in run.stdout.splitlines() if l.startswith("ERROR:")]
  assert error and "'numpy' backend" in error[0] and "Import fedjit before keras" in error[0]


def test_fedjit_first_selects_the_jax_backend():
  env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
  env["JAX_PLATFORMS"] = "cpu"
  run = subprocess.run([sys.executable, "-c", "import fedjit, keras; print(keras.backend.backend())"],
                       env=env, capture_output=True, text=True, timeout=120)
  assert run.stdout.split()[-1] == "jax", run.stderr
