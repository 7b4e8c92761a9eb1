"""The `fedjit simulate` main job."""

import json
import subprocess
import sys

import pytest

from fedjit import cli


def test_simulate_short_run_learns_and_writes_outputs(tmp_path, capsys):
  out = tmp_path / "run"
  final = cli.main(["simulate", "--rounds", "12", "--output", str(out), "--no-progress"])
  assert final == 0
  text = capsys.readouterr().out
  assert "fedavg on digits" in text and "Final accuracy on 10 held-out clients" in text
  records = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
  assert len(records) == 12
  assert records[-1]["eval/accuracy"] > 0.5  # chance is 0.1
  assert records[-1]["eval/loss"] < records[0]["eval/loss"]
  assert (out / "curves.png").stat().st_size > 1000
  assert (out / "checkpoint.safetensors").exists()


@pytest.mark.parametrize("algorithm", ["fedprox", "fedadam", "fedsgd"])
def test_other_algorithms_run(tmp_path, algorithm):
  cli.main(["simulate", "--algorithm", algorithm, "--rounds", "2", "--model", "softmax",
            "--output", str(tmp_path / algorithm), "--no-progress"])
  assert len((tmp_path / algorithm / "metrics.jsonl").read_text().splitlines()) == 2


def test_resume_continues_from_the_checkpoint(tmp_path):
  out = tmp_path / "run"
  cli.main(["simulate", "--rounds", "3", "--output", str(out), "--no-progress",
            "--checkpoint-every", "1", "--model", "softmax"])
  cli.main(["simulate", "--rounds", "5", "--output", str(out), "--no-progress", "--resume",
            "--model", "softmax"])
  rounds = [json.loads(l)["round"] for l in (out / "metrics.jsonl").read_text().splitlines()]
  assert rounds == [0, 1, 2, 3, 4]


def test_console_script_help():
  done = subprocess.run([sys.executable, "-m", "fedjit.cli", "simulate", "--help"],
                        capture_output=True, text=True, check=True)
  for option in ("--dataset", "--algorithm", "--rounds", "--clients-per-round",
                 "--client-epochs", "--batch-size", "--client-lr", "--server-lr", "--seed",
                 "--backend", "--output"):
    assert option in done.stdout
