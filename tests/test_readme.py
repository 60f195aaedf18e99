"""The README's example runs as written and does what it says."""

import pathlib
import re

import numpy as np

import keras_lottery as kl

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no python example"
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    model, masks = namespace["model"], namespace["masks"]
    assert kl.sparsity_report(model).remaining == sum(int(m.sum()) for m in masks.values())
    stored = kl.get_weights(model)
    assert all(np.all(stored[p][~m] == 0) for p, m in masks.items())
    assert (tmp_path / "ticket.keras").stat().st_size > 0
