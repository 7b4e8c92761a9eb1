"""`fedjit simulate` with an output folder used before, resumed runs, warnings and --help."""

import json
import re

import numpy as np
import pytest

from fedjit import cli

FAST = ["--model", "softmax", "--no-progress"]


def _records(out):
  return [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]


def test_a_reused_output_folder_is_refused_and_overwrite_replaces_it(tmp_path, capsys):
  out = tmp_path / "run"
  assert cli.main(["simulate", "--rounds", "1", "--output", str(out), *FAST]) == 0
  first = (out / "metrics.jsonl").read_text()
  capsys.readouterr()
  assert cli.main(["simulate", "--rounds", "2", "--output", str(out), *FAST]) == 1
  captured = capsys.readouterr()
  assert captured.err == (f"fedjit: error: {out} already holds a run (checkpoint.safetensors, "
                          f"metrics.jsonl); pass --resume to continue it or --overwrite to "
                          f"replace it\n")
  assert captured.out == ""  # refused before loading anything
  assert (out / "metrics.jsonl").read_text() == first
  assert cli.main(["simulate", "--rounds", "2", "--output", str(out), "--overwrite", *FAST]) == 0
  assert [r["round"] for r in _records(out)] == [1, 2]
  with pytest.raises(SystemExit) as e:
    cli.main(["simulate", "--output", str(out), "--overwrite", "--resume"])
  assert e.value.code == 2
  assert "not allowed with argument" in capsys.readouterr().err


def test_a_fresh_or_empty_output_folder_is_fine(tmp_path):
  out = tmp_path / "empty"
  out.mkdir()
  assert cli.main(["simulate", "--rounds", "1", "--output", str(out), *FAST]) == 0


def test_resume_says_where_it_starts_and_what_is_left(tmp_path, capsys):
  out = tmp_path / "run"
  assert cli.main(["simulate", "--rounds", "2", "--output", str(out), *FAST]) == 0
  capsys.readouterr()
  assert cli.main(["simulate", "--rounds", "3", "--output", str(out), "--resume", *FAST]) == 0
  text = capsys.readouterr().out
  assert f"resuming from round 2 of {out}: training round 3\n" in text
  assert "round    3/3:" in text and "round    1/3" not in text
  assert [r["round"] for r in _records(out)] == [1, 2, 3]
  # Fewer rounds than the checkpoint has: an error, before any data is loaded.
  assert cli.main(["simulate", "--rounds", "1", "--output", str(out), "--resume", *FAST]) == 1
  captured = capsys.readouterr()
  assert captured.err == (f"fedjit: error: {out / 'checkpoint.safetensors'} already has 3 "
                          f"rounds; pass --rounds > 3 to train more\n")
  # As many: nothing to do, which is no error.
  assert cli.main(["simulate", "--rounds", "3", "--output", str(out), "--resume", *FAST]) == 0
  captured = capsys.readouterr()
  assert captured.out == (f"{out} already has 3 rounds: nothing to train (pass --rounds > 3 "
                          f"to train more)\n") and captured.err == ""


def test_resume_with_other_options_says_what_wrote_the_checkpoint(tmp_path, capsys):
  out = tmp_path / "run"
  assert cli.main(["simulate", "--rounds", "1", "--output", str(out), *FAST]) == 0
  capsys.readouterr()
  assert cli.main(["simulate", "--rounds", "2", "--output", str(out), "--resume",
                   "--algorithm", "fedadam", *FAST]) == 1
  err = capsys.readouterr().err
  first, *rest = err.splitlines()
  assert len(rest) <= 1 and "Traceback" not in err
  assert first.startswith(f"fedjit: error: {out / 'checkpoint.safetensors'} was written by "
                          f"fedavg on digits (seed 0; 10 clients per round; model softmax, "
                          f"2 arrays: 10, 64x10); this run is fedadam on digits")
  assert "(algorithm fedavg -> fedadam)" in first
  assert first.endswith("Use the same options as that run, or a new --output.")


def test_console_and_metrics_count_rounds_from_1_in_plain_numbers(tmp_path, capsys):
  out = tmp_path / "run"
  assert cli.main(["simulate", "--rounds", "2", "--output", str(out), *FAST]) == 0
  text = capsys.readouterr().out
  assert re.search(r"^round    1/2: ", text, re.M) and re.search(r"^round    2/2: ", text, re.M)
  records = _records(out)
  assert [r["round"] for r in records] == [1, 2]
  for r in records:
    for k, v in r.items():
      assert type(v) in (int, float), (k, v)
      if isinstance(v, float) and k != "seconds":  # float32 metrics, as float32 prints them
        assert repr(v) == str(np.float32(v)), (k, v)


def test_a_diverging_run_warns_once_and_prints_big_losses_readably(tmp_path, capsys):
  out = tmp_path / "run"
  assert cli.main(["simulate", "--rounds", "2", "--client-lr", "1e6", "--heldout-clients", "0",
                   "--output", str(out), "--no-progress"]) == 0
  captured = capsys.readouterr()
  warnings = [l for l in captured.err.splitlines() if l.startswith("fedjit: warning: ")]
  assert len(warnings) == 1, captured.err
  assert "Round 1: the training loss is" in warnings[0] and "diverging" in warnings[0]
  assert "Lower the learning rate" in warnings[0]
  losses = re.findall(r"train_loss (\S+),", captured.out)
  assert len(losses) == 2 and all("e+" in l for l in losses), captured.out
  assert all(len(l) <= 10 for l in losses)


def test_help_says_each_default_once(capsys):
  with pytest.raises(SystemExit):
    cli.main(["simulate", "--help"])
  text = capsys.readouterr().out
  options = re.split(r"\n  (?=-)", text.split("options:", 1)[1])
  assert len(options) > 20
  for option in options:
    assert option.count("(default") <= 1, option
  flat = " ".join(text.split())
  assert "(default: None)" not in flat and "(default: False)" not in flat
  assert "(default: 1.0 for fedavg/fedprox, 0.01 for fedadam, 0.5 for fedsgd)" in flat
  assert "(default: fedjit_output/<dataset>-<algorithm>-<time>)" in flat
  assert "(default: 40)" in flat and "--overwrite" in flat
  assert "seed for data splits and sampling (default: 0)" in flat  # 0 is a default, not False
