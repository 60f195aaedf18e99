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


def fake_instability(start, round_, density, barrier):
    from keras_lottery.search.results import InstabilityRecord

    alpha = [i / 4 for i in range(5)]
    accuracy = [0.9 - barrier * (1 - abs(2 * a - 1)) for a in alpha]
    return InstabilityRecord(
        round=round_, start_iteration=start, network="ticket" if round_ else "dense",
        density=density, seeds=[1, 2], iterations=[300, 300], normalization="recompute",
        evaluated_on="test", curves={"alpha": alpha, "loss": [0.3] * 5, "accuracy": accuracy},
        barriers={"loss": 0.0, "accuracy": barrier}, error_quantity="accuracy",
        instability=barrier)


def test_stability_figures_only_for_a_search_that_measured_them(tmp_path):
    result = fake_result()
    result.rewind_choice = {
        "chosen": 100, "stable": True, "tolerance": 0.02, "network": "dense",
        "candidates": [fake_instability(0, 0, 1.0, 0.2), fake_instability(100, 0, 1.0, 0.01)]}
    result.instability = [fake_instability(100, r, 0.8**r, 0.01 * r) for r in range(4)]
    written = plots.save_figures(result, tmp_path)
    assert [p.name for p in written] == ["accuracy_curves.png", "early_stop.png",
                                         "stability_paths.png", "stability_barriers.png"]
    for path in written[2:]:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    ax = plots.stability_paths(result)
    # One line per candidate and per ticket measured, drawn as error (1 - accuracy).
    assert len(ax.lines) == 6
    assert max(ax.lines[0].get_ydata()) == pytest.approx(0.1 + 0.2)
    with pytest.raises(ValueError, match="Expected instability records"):
        plots.stability_paths(fake_result())
