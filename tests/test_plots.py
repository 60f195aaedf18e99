"""Figures from a SearchResult: files that exist and hold a picture."""

import pytest

from keras_lottery import plots
from keras_lottery.search.results import RoundRecord, SearchResult


def fake_result():
    records = []
    for r in range(4):
        for kind in ["ticket", "random_reinit"] if r else ["ticket"]:
            density = 0.8**r
            curves = {"iteration": [100, 200, 300],
                      "val_loss": [0.5, 0.3, 0.35], "val_accuracy": [0.9, 0.95, 0.94],
                      "test_accuracy": [0.9, 0.95 - 0.01 * r, 0.94]}
            records.append(RoundRecord(
                round=r, kind=kind, density=density, layer_densities={"a": density},
                iterations=300, final={"test_accuracy": 0.94},
                early_stop={"iteration": 200, "test_accuracy": 0.95}, curves=curves,
                wall_time=1.0))
    return SearchResult(records)


def test_save_figures_writes_png_files(tmp_path):
    written = plots.save_figures(fake_result(), tmp_path)
    assert [p.name for p in written] == ["accuracy_curves.png", "early_stop.png"]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_comparison_of_several_searches(tmp_path):
    written = plots.save_figures({"iterative": fake_result(), "one-shot": fake_result()},
                                 tmp_path)
    assert (tmp_path / "early_stop.png").stat().st_size > 5000 and len(written) == 2


def test_curves_need_a_search_with_validation():
    result = fake_result()
    for record in result.records:
        record.curves = {}
    with pytest.raises(ValueError, match="Expected ticket records with curves"):
        plots.accuracy_curves(result)


def test_a_search_without_accuracy_draws_its_loss(tmp_path):
    result = fake_result()
    for record in result.records:  # A regression model: loss and mae, no accuracy.
        record.curves = {"iteration": [100, 200], "val_loss": [0.5, 0.4], "val_mae": [0.6, 0.5]}
        record.final = {"val_loss": 0.4}
        record.early_stop = {"iteration": 200, "val_loss": 0.4}
    assert plots.accuracy_curves(result).get_ylabel() == "val loss"
    assert plots.early_stop(result)[1].get_ylabel() == "val loss at early stop"
    assert len(plots.save_figures(result, tmp_path)) == 2
