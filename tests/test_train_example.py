"""examples/train_yinyang.py runs end to end (a few batches): data, encoding, C adjoint through the JAX bridge, optax."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("optax")
ROOT = Path(__file__).resolve().parent.parent


def test_training_example_runs_and_reports_each_epoch(tmp_path):
    out = tmp_path / "history.json"
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "train_yinyang.py"), "--epochs", "2",
                           "--train-size", "64", "--test-size", "40", "--batch", "16", "--json", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "best test accuracy" in done.stdout
    history = json.loads(out.read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    for h in history:
        assert 0.0 <= h["test_accuracy"] <= 1.0 and h["loss"] > 0
        assert h["test_accuracy"] * 40 == pytest.approx(round(h["test_accuracy"] * 40))  # every test point counted
