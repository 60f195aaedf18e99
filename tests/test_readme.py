"""The README's example runs as written and does what it says."""

import pathlib
import re

import numpy as np
from helpers import assert_rewound

import keras_lottery as kl

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no python example"
    monkeypatch.chdir(tmp_path)
    # Records the model's state right after the masks are applied: the ticket.
    tickets = []
    original = kl.apply_masks

    def recording(model, masks):
        original(model, masks)
        tickets.append(kl.state.snapshot(model))

    monkeypatch.setattr(kl, "apply_masks", recording)
    namespace = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    model, masks, theta0 = namespace["model"], namespace["masks"], namespace["theta0"]
    (ticket,) = tickets
    assert_rewound(ticket, theta0, masks)  # every variable back at θ0, pruned ones zero
    assert kl.sparsity_report(model).remaining == sum(int(m.sum()) for m in masks.values())
    stored = kl.get_weights(model)
    assert all(np.all(stored[p][~m] == 0) for p, m in masks.items())
    assert (tmp_path / "ticket.keras").stat().st_size > 0
