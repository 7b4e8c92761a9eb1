"""Tests for the small federated datasets: FedProx's Synthetic(α, β), MNIST
and Fashion-MNIST from IDX files (written here by an independent writer),
and scikit-learn's digits."""

from __future__ import annotations

import gzip
import hashlib
import io
import struct

import numpy as np
import pytest

from fedjit.simulation.datasets import digits, fashion_mnist, mnist, synthetic
from fedjit.simulation.datasets._download import DownloadError


def _all_examples(data, cid):
  ds = data.create_dataset_for_client(cid)
  if len(ds) == 0:
    return None
  return ds.batch(len(ds)).as_elements()[0]


def _labels(data, key):
  out = []
  for cid in data.client_ids:
    ex = _all_examples(data, cid)
    out.append(np.zeros(0, np.int64) if ex is None else ex[key])
  return out


# ================================================================= synthetic


def _softmax(z):
  e = np.exp(z - z.max(axis=-1, keepdims=True))
  return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("seed", [0, 7])
def test_synthetic_client_sizes_follow_the_lognormal_formula(seed):
  expected = np.random.default_rng(seed).lognormal(4, 2, 30).astype(int) + 50
  train, test = synthetic.load_data(0.5, 0.5, seed=seed)
  assert train.client_ids == [f"f_{i:05d}" for i in range(30)] == test.client_ids
  sizes = [len(train.create_dataset_for_client(c)) + len(test.create_dataset_for_client(c))
           for c in train.client_ids]
  np.testing.assert_array_equal(sizes, expected)
  assert min(sizes) >= 50


def test_synthetic_split_is_90_10_per_client_and_covers_the_data():
  data = synthetic.generate(1.0, 1.0, num_clients=12, seed=3)
  train, test = synthetic.load_data(1.0, 1.0, num_clients=12, seed=3)
  assert train.element_type_structure == test.element_type_structure
  assert str(train.element_type_structure) == "<x=float32[60],y=int32>"
  for k, cid in enumerate(train.client_ids):
    n = len(data.y[k])
    tr, te = _all_examples(train, cid), _all_examples(test, cid)
    assert len(tr["y"]) == int(0.9 * n) and abs(len(tr["y"]) - 0.9 * n) < 1
    assert len(tr["y"]) + len(te["y"]) == n
    # The split is a shuffle of the generated examples, cast to float32.
    both_x = np.concatenate([tr["x"], te["x"]])
    both_y = np.concatenate([tr["y"], te["y"]])
    assert both_x.dtype == np.float32 and both_y.dtype == np.int32
    key = lambda x: np.lexsort(x.T[::-1])
    want = data.x[k].astype(np.float32)
    np.testing.assert_array_equal(both_x[key(both_x)], want[key(want)])
    np.testing.assert_array_equal(np.sort(both_y), np.sort(data.y[k]))


@pytest.mark.parametrize("alpha,beta,iid", [(0, 0, False), (0.5, 0.5, False), (1, 1, False),
                                            (0, 0, True)])
def test_synthetic_labels_are_the_argmax_of_each_clients_softmax_model(alpha, beta, iid):
  data = synthetic.generate(alpha, beta, iid=iid, num_clients=10, seed=1)
  for k in range(10):
    probs = _softmax(data.x[k] @ data.weights[k] + data.biases[k])
    np.testing.assert_array_equal(data.y[k], np.argmax(probs, axis=1))
    assert data.y[k].dtype == np.int32
  # ... and the float32 examples of load_data keep those labels (no tie is
  # near enough to flip under rounding).
  train, _ = synthetic.load_data(alpha, beta, iid=iid, num_clients=10, seed=1)
  for k, cid in enumerate(train.client_ids):
    ex = _all_examples(train, cid)
    logits = ex["x"].astype(np.float64) @ data.weights[k] + data.biases[k]
    assert np.mean(np.argmax(logits, axis=1) == ex["y"]) > 0.99


def test_synthetic_draws_follow_the_fedprox_formulas():
  alpha, beta, k = 0.7, 2.0, 300
  data = synthetic.generate(alpha, beta, num_clients=k, seed=11)
  # u_k ~ N(0, alpha^2), B_k ~ N(0, beta^2): scale is the standard deviation.
  assert abs(np.std(data.model_means) / alpha - 1) < 0.15
  assert abs(np.std(data.feature_offsets) / beta - 1) < 0.15
  # W_k ~ N(u_k, 1) and b_k ~ N(u_k, 1) entrywise.
  w_resid = data.weights - data.model_means[:, None, None]
  b_resid = data.biases - data.model_means[:, None]
  assert abs(w_resid.mean()) < 0.02 and abs(w_resid.std() - 1) < 0.02
  assert abs(b_resid.mean()) < 0.08 and abs(b_resid.std() - 1) < 0.08
  # v_k ~ N(B_k, 1) per feature.
  v_resid = data.feature_means - data.feature_offsets[:, None]
  assert abs(v_resid.mean()) < 0.03 and abs(v_resid.std() - 1) < 0.03
  # Sigma = diag(j^-1.2), j = 1..60.
  np.testing.assert_allclose(data.feature_variances, np.arange(1, 61) ** -1.2)
  centred = np.concatenate([x - v for x, v in zip(data.x, data.feature_means)])
  n = len(centred)
  cov = centred.T @ centred / n
  var = np.diag(cov)
  np.testing.assert_allclose(var, np.arange(1, 61) ** -1.2, rtol=10 * np.sqrt(2 / n) + 0.01)
  corr = cov / np.sqrt(np.outer(var, var))
  off = corr[~np.eye(60, dtype=bool)]
  assert np.max(np.abs(off)) < 6 / np.sqrt(n)
  # Each client's sample mean is near v_k: standardized errors are ~N(0, 1).
  z = np.concatenate([(x.mean(0) - v) / np.sqrt(data.feature_variances / len(x))
                      for x, v in zip(data.x, data.feature_means)])
  assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05


def test_synthetic_iid_variant_shares_one_model():
  data = synthetic.generate(0, 0, iid=True, num_clients=8, seed=2)
  for k in range(1, 8):
    np.testing.assert_array_equal(data.weights[k], data.weights[0])
    np.testing.assert_array_equal(data.biases[k], data.biases[0])
  np.testing.assert_array_equal(data.feature_means, np.zeros((8, 60)))
  # With beta > 0 FedProx's IID branch still shares the model, and shifts
  # every feature of client k by the same B_k.
  data = synthetic.generate(1, 1, iid=True, num_clients=8, seed=2)
  assert all(np.array_equal(w, data.weights[0]) for w in data.weights)
  np.testing.assert_array_equal(data.feature_means,
                                np.repeat(data.feature_offsets[:, None], 60, axis=1))
  # The non-IID variant gives every client its own model.
  data = synthetic.generate(1, 1, num_clients=8, seed=2)
  assert not np.allclose(data.weights[1], data.weights[0])


def test_synthetic_is_deterministic_for_a_seed():
  a_train, a_test = synthetic.load_data(1, 1, num_clients=5, seed=4)
  b_train, b_test = synthetic.load_data(1, 1, num_clients=5, seed=4)
  c_train, _ = synthetic.load_data(1, 1, num_clients=5, seed=5)
  for cid in a_train.client_ids:
    for a, b in ((a_train, b_train), (a_test, b_test)):
      ea, eb = _all_examples(a, cid), _all_examples(b, cid)
      np.testing.assert_array_equal(ea["x"], eb["x"])
      np.testing.assert_array_equal(ea["y"], eb["y"])
  x_a = _all_examples(a_train, "f_00000")["x"]
  x_c = _all_examples(c_train, "f_00000")["x"]
  assert x_a.shape != x_c.shape or not np.array_equal(x_a, x_c)


@pytest.mark.parametrize("kwargs", [dict(alpha=-1, beta=0), dict(alpha=0, beta=float("nan")),
                                    dict(alpha=0, beta=0, num_clients=0)])
def test_synthetic_rejects_bad_arguments(kwargs):
  with pytest.raises(ValueError):
    synthetic.load_data(**kwargs)


# ====================================================================== IDX

_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
          np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}


def _idx_bytes(array: np.ndarray) -> bytes:
  """An IDX file, written from the format's description (not fedjit's reader)."""
  array = np.asarray(array)
  header = struct.pack(">BBBB", 0, 0, _CODES[array.dtype], array.ndim)
  header += struct.pack(f">{array.ndim}I", *array.shape)
  return header + array.astype(array.dtype.newbyteorder(">")).tobytes(order="C")


def _write(path, array, gz=False):
  data = _idx_bytes(array)
  path.write_bytes(gzip.compress(data) if gz else data)
  return path


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("array", [
    np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
    np.array([-128, -1, 0, 5, 127], np.int8),
    np.array([[-300, 2], [7, 32000]], np.int16),
    np.array([-(2 ** 31), 1, 2 ** 31 - 1], np.int32),
    np.array([[0.5, -1.25e-3, np.inf]], np.float32),
    np.linspace(-1, 1, 12).reshape(3, 2, 2),
    np.zeros((0, 28, 28), np.uint8),
], ids=["uint8", "int8", "int16", "int32", "float32", "float64", "empty"])
def test_read_idx_reads_back_exactly(tmp_path, array, gz):
  path = _write(tmp_path / ("a.idx.gz" if gz else "a.idx"), array, gz)
  got = mnist.read_idx(path)
  assert got.shape == array.shape and got.dtype == array.dtype
  assert got.dtype.byteorder in ("=", "|")
  np.testing.assert_array_equal(got, array)


def test_read_idx_known_bytes(tmp_path):
  # Hand-assembled: magic 0x00000801 (uint8, 1-D), size 3, data 7 2 1.
  (tmp_path / "l").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1]))
  np.testing.assert_array_equal(mnist.read_idx(tmp_path / "l"), [7, 2, 1])
  # 0x00000B02: int16 2x1, big-endian 0x0102 = 258 and 0xFFFE = -2.
  (tmp_path / "s").write_bytes(bytes([0, 0, 0x0B, 2, 0, 0, 0, 2, 0, 0, 0, 1, 1, 2, 0xFF, 0xFE]))
  np.testing.assert_array_equal(mnist.read_idx(tmp_path / "s"), [[258], [-2]])


def test_read_idx_bad_magic_names_the_file(tmp_path):
  path = tmp_path / "not-idx.bin"
  path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
  with pytest.raises(mnist.IdxFormatError, match=r"not-idx\.bin.*magic number 0x89504E47"):
    mnist.read_idx(path)
  path.write_bytes(bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 9]))  # unknown dtype code
  with pytest.raises(ValueError, match=r"not-idx\.bin.*magic"):
    mnist.read_idx(path)


def test_read_idx_truncated_files_name_the_file(tmp_path):
  full = _idx_bytes(np.arange(100, dtype=np.uint8).reshape(4, 25))
  path = tmp_path / "short-idx3-ubyte"
  path.write_bytes(full[:-1])
  with pytest.raises(mnist.IdxFormatError, match=r"short-idx3-ubyte.*truncated.*100 bytes.*99"):
    mnist.read_idx(path)
  path.write_bytes(full[:6])  # inside the dimension sizes
  with pytest.raises(mnist.IdxFormatError, match=r"short-idx3-ubyte.*truncated IDX header"):
    mnist.read_idx(path)
  path.write_bytes(full[:3])
  with pytest.raises(mnist.IdxFormatError, match=r"short-idx3-ubyte.*truncated"):
    mnist.read_idx(path)
  path.write_bytes(full + b"\x00")
  with pytest.raises(mnist.IdxFormatError, match=r"short-idx3-ubyte.*1 unexpected bytes"):
    mnist.read_idx(path)
  gz = tmp_path / "cut.gz"
  gz.write_bytes(gzip.compress(full)[:-12])
  with pytest.raises(mnist.IdxFormatError, match=r"cut\.gz.*gzip"):
    mnist.read_idx(gz)


# ============================================================ MNIST-like dirs


def _fake_split(rng, n):
  labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)
  images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
  images[:, 0, 0] = labels * 25  # so every image is told apart from the others
  images[:, 0, 1] = np.arange(n) % 256
  images[:, 0, 2] = np.arange(n) // 256
  return images, labels


def _fake_dataset(folder, seed=0, n_train=600, n_test=100, names=None):
  """Writes MNIST's four files (train gzipped, test raw) into `folder`."""
  rng = np.random.default_rng(seed)
  (x, y), (xt, yt) = _fake_split(rng, n_train), _fake_split(rng, n_test)
  folder.mkdir(parents=True, exist_ok=True)
  names = names or {"train_images": "train-images-idx3-ubyte.gz",
                    "train_labels": "train-labels-idx1-ubyte.gz",
                    "test_images": "t10k-images-idx3-ubyte",
                    "test_labels": "t10k-labels-idx1-ubyte"}
  for role, array in (("train_images", x), ("train_labels", y), ("test_images", xt),
                      ("test_labels", yt)):
    _write(folder / names[role], array, gz=names[role].endswith(".gz"))
  return (x, y), (xt, yt)


def _rows(images, labels):
  return sorted(zip(labels.tolist(), (im.tobytes() for im in images)))


def _check_federated(data, images, labels):
  """Every example exactly once across clients, pixels = images / 255."""
  got_x, got_y = [], []
  for cid in data.client_ids:
    ex = _all_examples(data, cid)
    if ex is None:
      continue
    assert ex["pixels"].dtype == np.float32 and ex["label"].dtype == np.int32
    assert ex["pixels"].shape[1:] == (28, 28)
    assert ex["pixels"].min() >= 0 and ex["pixels"].max() <= 1
    got_x.append(np.rint(ex["pixels"] * 255).astype(np.uint8))
    got_y.append(ex["label"])
  got_x, got_y = np.concatenate(got_x), np.concatenate(got_y)
  assert _rows(got_x, got_y) == _rows(images, labels)
  np.testing.assert_array_equal(np.bincount(got_y, minlength=10), np.bincount(labels, minlength=10))


@pytest.mark.parametrize("module", [mnist, fashion_mnist])
def test_iid_load_data_from_a_folder(tmp_path, module):
  (x, y), (xt, yt) = _fake_dataset(tmp_path / "files")
  (ax, ay), (axt, ayt) = module.load_arrays(tmp_path / "files")
  np.testing.assert_array_equal(ax, x)
  np.testing.assert_array_equal(ayt, yt)
  train, test = module.load_data(tmp_path / "files", num_clients=5, partition="iid", seed=0)
  assert train.client_ids == test.client_ids == ["0", "1", "2", "3", "4"]
  assert str(train.element_type_structure) == "<label=int32,pixels=float32[28,28]>"
  assert [len(train.create_dataset_for_client(c)) for c in train.client_ids] == [120] * 5
  assert sum(len(test.create_dataset_for_client(c)) for c in test.client_ids) == 100
  _check_federated(train, x, y)
  _check_federated(test, xt, yt)
  idx = _client_index(train, x, "0")
  ex = _all_examples(train, "0")
  np.testing.assert_array_equal(ex["pixels"], x[idx].astype(np.float32) / np.float32(255))
  np.testing.assert_array_equal(ex["label"], y[idx])


def _client_index(data, images, cid):
  """Indices into `images` of the client's examples (images are distinct)."""
  lookup = {im.tobytes(): i for i, im in enumerate(images)}
  px = np.rint(_all_examples(data, cid)["pixels"] * 255).astype(np.uint8)
  return np.array([lookup[p.tobytes()] for p in px])


def test_dirichlet_load_data_matches_test_labels_to_train_labels(tmp_path):
  (x, y), (xt, yt) = _fake_dataset(tmp_path, n_train=2000, n_test=500)
  train, test = mnist.load_data(tmp_path, num_clients=8, partition="dirichlet", alpha=0.2,
                                min_partition_size=20, seed=3)
  _check_federated(train, x, y)
  _check_federated(test, xt, yt)
  train_hist = np.stack([np.bincount(l, minlength=10) for l in _labels(train, "label")])
  test_hist = np.stack([np.bincount(l, minlength=10) for l in _labels(test, "label")])
  assert train_hist.sum(0).tolist() == np.bincount(y).tolist()
  assert test_hist.sum(0).tolist() == np.bincount(yt).tolist()
  assert train_hist.sum(1).min() >= 20
  # Skewed: some client lacks some class entirely; it then gets none of it in test.
  assert (train_hist == 0).any()
  assert np.all(test_hist[train_hist == 0] == 0)
  # Test shares follow train shares: each within one example of its quota.
  quota = train_hist / train_hist.sum(0) * test_hist.sum(0)
  assert np.all(np.abs(test_hist - quota) < 1)


def test_load_data_is_deterministic_and_seeded(tmp_path):
  _fake_dataset(tmp_path)
  a, _ = mnist.load_data(tmp_path, num_clients=4, partition="dirichlet", min_partition_size=5,
                         seed=1)
  b, _ = mnist.load_data(tmp_path, num_clients=4, partition="dirichlet", min_partition_size=5,
                         seed=1)
  c, _ = mnist.load_data(tmp_path, num_clients=4, partition="dirichlet", min_partition_size=5,
                         seed=2)
  la, lb, lc = _labels(a, "label"), _labels(b, "label"), _labels(c, "label")
  assert all(np.array_equal(p, q) for p, q in zip(la, lb))
  assert not all(np.array_equal(p, q) for p, q in zip(la, lc))


def test_load_data_finds_dotted_names_and_the_cache_subfolder(tmp_path, monkeypatch):
  names = {"train_images": "train-images.idx3-ubyte", "train_labels": "train-labels.idx1-ubyte",
           "test_images": "t10k-images.idx3-ubyte.gz", "test_labels": "t10k-labels.idx1-ubyte.gz"}
  (x, y), _ = _fake_dataset(tmp_path / "cache" / "mnist", names=names)
  monkeypatch.setenv("FEDJIT_DATA_DIR", str(tmp_path / "cache"))
  (ax, ay), _ = mnist.load_arrays()
  np.testing.assert_array_equal(ax, x)
  (ax, ay), _ = mnist.load_arrays(tmp_path / "cache")  # a folder with an mnist/ folder
  np.testing.assert_array_equal(ay, y)


def test_fashion_mnist_falls_back_to_the_debian_folder(tmp_path, monkeypatch):
  (x, y), _ = _fake_dataset(tmp_path / "usr-share-datasets-fashion-mnist")
  monkeypatch.setenv("FEDJIT_DATA_DIR", str(tmp_path / "empty-cache"))
  monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "usr-share-datasets-fashion-mnist")
  (ax, ay), _ = fashion_mnist.load_arrays()
  np.testing.assert_array_equal(ay, y)
  with pytest.raises(FileNotFoundError, match="download=True"):
    mnist.load_arrays()  # MNIST does not look there


def test_missing_files_say_where_and_how(tmp_path):
  (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"")
  with pytest.raises(FileNotFoundError, match=r"mnist: .*t10k-labels-idx1-ubyte.*looked in "
                     r".*download=True"):
    mnist.load_data(tmp_path)


def test_mismatched_counts_and_bad_partition(tmp_path):
  _fake_dataset(tmp_path)
  _write(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(99, np.uint8))
  with pytest.raises(mnist.IdxFormatError, match=r"t10k-images-idx3-ubyte has 100 images but "
                     r".*t10k-labels-idx1-ubyte has 99 labels"):
    mnist.load_arrays(tmp_path)
  _fake_dataset(tmp_path)
  with pytest.raises(ValueError, match="partition must be 'iid' or 'dirichlet'"):
    mnist.load_data(tmp_path, partition="shards")


class _Response(io.BytesIO):
  headers: dict = {}


def test_download_checks_sha256_into_the_cache(tmp_path, monkeypatch):
  served = {}
  folder = tmp_path / "server"
  _fake_dataset(folder, names={r: n + ".gz" for r, n in mnist._FILES.items()})
  sources = {}
  for role, name in mnist._FILES.items():
    blob = (folder / (name + ".gz")).read_bytes()
    src = mnist.SOURCES[role]
    served[src.url] = blob
    sources[role] = type(src)(src.filename, src.url, hashlib.sha256(blob).hexdigest())
  opener = lambda url: _Response(served[url])
  with pytest.raises(DownloadError, match="Checksum mismatch"):  # real pinned sums
    mnist.load_arrays(download=True, cache_dir=tmp_path / "c1", opener=opener)
  assert not list((tmp_path / "c1" / "mnist").glob("*.gz"))
  monkeypatch.setattr(mnist, "SOURCES", sources)
  (x, _), _ = mnist.load_arrays(download=True, cache_dir=tmp_path / "c2", opener=opener)
  assert x.shape == (600, 28, 28)
  assert sorted(p.name for p in (tmp_path / "c2" / "mnist").iterdir()) == sorted(
      s.filename for s in sources.values())


@pytest.mark.skipif(not (fashion_mnist.DEBIAN_DIR / "train-labels-idx1-ubyte.gz").exists(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_from_debian():
  (x, y), (xt, yt) = fashion_mnist.load_arrays(fashion_mnist.DEBIAN_DIR)
  assert x.shape == (60000, 28, 28) and xt.shape == (10000, 28, 28)
  assert np.bincount(y).tolist() == [6000] * 10 and np.bincount(yt).tolist() == [1000] * 10


# ==================================================================== digits


def _digits_labels(train, test):
  return [np.concatenate([a, b]) for a, b in zip(_labels(train, "label"), _labels(test, "label"))]


def test_digits_arrays_are_sklearns_scaled():
  from sklearn.datasets import load_digits
  ref = load_digits()
  x, y = digits.load_arrays()
  assert x.dtype == np.float32 and y.dtype == np.int32 and x.shape == (1797, 64)
  np.testing.assert_array_equal(x, (ref.data / 16).astype(np.float32))
  np.testing.assert_array_equal(y, ref.target)
  assert x.min() == 0 and x.max() == 1


@pytest.mark.parametrize("num_clients,alpha", [(10, 0.5), (50, 0.5), (5, 0.1)])
def test_digits_totals_and_label_histogram(num_clients, alpha):
  train, test = digits.load_data(num_clients=num_clients, alpha=alpha)
  assert train.client_ids == test.client_ids == [str(i) for i in range(num_clients)]
  assert str(train.element_type_structure) == "<label=int32,pixels=float32[64]>"
  labels = _digits_labels(train, test)
  assert sum(len(l) for l in labels) == 1797
  # Independently known: the class sizes of the 1,797 digits.
  assert np.bincount(np.concatenate(labels)).tolist() == [178, 182, 177, 183, 181, 182, 181,
                                                          179, 174, 180]
  for cid in train.client_ids:
    n_train = len(train.create_dataset_for_client(cid))
    n_test = len(test.create_dataset_for_client(cid))
    n = n_train + n_test
    assert n_test == min(round(0.2 * n), n - 1) and n_train >= 1


def test_digits_split_keeps_every_example_once():
  train, test = digits.load_data(num_clients=7, alpha=1.0, seed=5)
  x, y = digits.load_arrays()
  got = []
  for data in (train, test):
    for cid in data.client_ids:
      ex = _all_examples(data, cid)
      if ex is not None:
        got.extend(zip(ex["label"].tolist(), (r.tobytes() for r in ex["pixels"])))
  assert sorted(got) == sorted(zip(y.tolist(), (r.tobytes() for r in x)))


def _label_skew(num_clients, alpha, seeds=(0, 1, 2)):
  """Mean total-variation distance of client label mixes from the global one."""
  out = []
  for seed in seeds:
    train, test = digits.load_data(num_clients=num_clients, alpha=alpha, seed=seed)
    labels = _digits_labels(train, test)
    overall = np.bincount(np.concatenate(labels), minlength=10) / 1797
    out += [0.5 * np.abs(np.bincount(l, minlength=10) / len(l) - overall).sum() for l in labels]
  return float(np.mean(out))


def test_digits_non_iidness_grows_as_alpha_shrinks():
  skew = [_label_skew(10, a) for a in (100.0, 1.0, 0.1)]
  assert skew[0] < skew[1] < skew[2]
  assert skew[0] < 0.1 and skew[2] > 0.5


def test_digits_is_deterministic():
  a = digits.load_data(num_clients=10, alpha=0.5, seed=0)
  b = digits.load_data(num_clients=10, alpha=0.5, seed=0)
  c = digits.load_data(num_clients=10, alpha=0.5, seed=1)
  for da, db in zip(a, b):
    for cid in da.client_ids:
      ea, eb = _all_examples(da, cid), _all_examples(db, cid)
      np.testing.assert_array_equal(ea["pixels"], eb["pixels"])
      np.testing.assert_array_equal(ea["label"], eb["label"])
  assert [len(a[0].create_dataset_for_client(c)) for c in a[0].client_ids] != \
      [len(c[0].create_dataset_for_client(i)) for i in c[0].client_ids]


def test_digits_rejects_bad_arguments():
  with pytest.raises(ValueError, match="num_clients"):
    digits.load_data(num_clients=0)
  with pytest.raises(ValueError, match="alpha"):
    digits.load_data(alpha=0)
  with pytest.raises(ValueError, match="test_fraction"):
    digits.load_data(test_fraction=1.0)
