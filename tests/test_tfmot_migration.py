"""tfmot's comprehensive pruning guide, rewritten for Keras 3 (examples/tfmot_migration.py),
runs on every backend and does what each section says."""

import importlib.util
import pathlib

import numpy as np

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "tfmot_migration.py"


def _example():
    spec = importlib.util.spec_from_file_location("tfmot_migration", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_guide_rewritten_for_keras_3():
    results = _example().main(epochs=4)
    assert results["whole model"] == 0.5  # ConstantSparsity(0.5) on every kernel.
    some = results["some layers"]
    first = next(d for p, d in some.items() if "/first/" in p)
    second = next(d for p, d in some.items() if "/second/" in p)
    assert first == 0.2 and second == 1.0  # Only the layer named is pruned, to 80%.
    assert results["custom layer"] == 0.5  # The custom layer, the one masked, halved.
    assert results["custom loop"] == 0.5
    lines = results["logged"].splitlines()
    assert lines[0].split(",")[:3] == ["epoch", "loss", "sparsity"]
    assert all(float(line.split(",")[2]) == 0.5 for line in lines[1:])
    assert results["restored predicts the same"] and results["stripped predicts the same"]
    pruned, dense = results["gzip bytes, pruned vs dense"]
    assert pruned < dense
    for mask in results["2:4"].values():
        assert (mask.reshape(5, 4, 20).sum(axis=1) == 2).all()  # 2 of every 4 inputs.
    assert np.mean([m.mean() for m in results["2:4"].values()]) == 0.5
