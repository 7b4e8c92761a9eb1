"""Downloads that never happen silently: explicit sources, pinned checksums,
a progress bar, atomic writes into a cache folder, and clear errors.

The cache folder is `$FEDJIT_DATA_DIR`, or `~/.cache/fedjit/datasets`
(following `$XDG_CACHE_HOME`) when it is not set.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import pathlib
import tempfile
import urllib.request
from typing import Callable, Iterator

__all__ = ["Source", "DownloadError", "cache_dir", "fetch", "sha256_of", "atomic_path"]

CHUNK = 1 << 20


class DownloadError(RuntimeError):
  """A dataset file could not be fetched or failed its checksum."""


@dataclasses.dataclass(frozen=True)
class Source:
  """Where a dataset file comes from and what it must hash to.

  Attributes:
    filename: the file's name in the cache folder.
    url: where it is downloaded from.
    sha256: the pinned SHA-256 of the file, checked after every download.
    description: what the file is, for messages.
    size: the approximate size in bytes (for messages), if known.
  """
  filename: str
  url: str
  sha256: str
  description: str = ""
  size: int | None = None


def cache_dir(override: str | os.PathLike | None = None) -> pathlib.Path:
  """The dataset cache folder: `override`, `$FEDJIT_DATA_DIR`, or
  `~/.cache/fedjit/datasets`.

  Example:
    >>> cache_dir("/tmp/data")
    PosixPath('/tmp/data')
  """
  if override is not None:
    return pathlib.Path(override).expanduser()
  env = os.environ.get("FEDJIT_DATA_DIR")
  if env:
    return pathlib.Path(env).expanduser()
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return pathlib.Path(base) / "fedjit" / "datasets"


def sha256_of(path: str | os.PathLike) -> str:
  """The SHA-256 hex digest of a file."""
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(CHUNK), b""):
      h.update(chunk)
  return h.hexdigest()


@contextlib.contextmanager
def atomic_path(final: pathlib.Path) -> Iterator[pathlib.Path]:
  """A temporary path beside `final` that replaces it only if the block
  succeeds; on any error nothing is left behind.

  Example:
    >>> with atomic_path(target) as tmp:
    ...   tmp.write_bytes(data)
  """
  final.parent.mkdir(parents=True, exist_ok=True)
  fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
  os.close(fd)
  tmp = pathlib.Path(name)
  umask = os.umask(0)
  os.umask(umask)
  os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; cache files follow the umask
  try:
    yield tmp
    os.replace(tmp, final)
  except BaseException:
    tmp.unlink(missing_ok=True)
    raise


def _progress(total: int | None, desc: str):
  try:
    from tqdm.auto import tqdm
  except ImportError:  # a bar is a nicety, not a requirement
    return contextlib.nullcontext(None)
  return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc)


def _download(url: str, dest: pathlib.Path, desc: str, opener: Callable = urllib.request.urlopen):
  with opener(url) as response:
    total = response.headers.get("Content-Length") if hasattr(response, "headers") else None
    total = int(total) if total else None
    with open(dest, "wb") as out, _progress(total, desc) as bar:
      for chunk in iter(lambda: response.read(CHUNK), b""):
        out.write(chunk)
        if bar is not None:
          bar.update(len(chunk))


def fetch(source: Source, cache: str | os.PathLike | None = None, download: bool = False,
          opener: Callable = urllib.request.urlopen) -> pathlib.Path:
  """The cached path of `source`'s file, downloading it only if asked.

  Args:
    source: the file to fetch.
    cache: the cache folder (see `cache_dir`).
    download: whether to download the file when it is not cached. Without
      it a missing file raises FileNotFoundError that says how to get it.
    opener: a `urlopen`-like function (tests pass a local one).

  Returns:
    The path of the verified file.

  Raises:
    FileNotFoundError: the file is not cached and `download` is False.
    DownloadError: the download failed or the checksum did not match; no
      file is left in the cache.

  Example:
    >>> path = fetch(EMNIST_SQLITE, download=True)
  """
  folder = cache_dir(cache)
  path = folder / source.filename
  if path.exists():
    return path
  if not download:
    size = f" ({source.size / 1e6:.0f} MB)" if source.size else ""
    raise FileNotFoundError(
        f"{source.description or source.filename} is not in the cache: {path} does not "
        f"exist. Download it{size} from {source.url} by passing download=True, or put "
        f"the file there yourself (its SHA-256 must be {source.sha256}).")
  try:
    with atomic_path(path) as tmp:
      _download(source.url, tmp, source.filename, opener)
      digest = sha256_of(tmp)
      if digest != source.sha256:
        raise DownloadError(
            f"Checksum mismatch for {source.filename} downloaded from {source.url}: "
            f"expected SHA-256 {source.sha256}, got {digest}. The download was "
            f"corrupted or the file changed upstream; nothing was written to {folder}.")
  except DownloadError:
    raise
  except Exception as e:
    raise DownloadError(
        f"Could not download {source.filename} from {source.url}: {type(e).__name__}: "
        f"{e}. Nothing was written to {folder}.") from e
  return path
