"""The keras-lottery command end to end, on MNIST-1D (generated, no download)."""

import json
import os
import subprocess
import sys

import pytest

from keras_lottery import cli
from keras_lottery.search.results import SearchResult

TINY = ["--network", "mlp", "--dataset", "mnist1d", "--rounds", "2", "--iterations", "70",
        "--eval-every", "35", "--limit", "700", "--verbose", "0"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert cli.main(["run", *TINY, "--controls", "random_reinit", "--out", str(out)]) == 0
    return out


def test_run_writes_a_resumable_directory(run_dir):
    result = SearchResult.from_json((run_dir / "result.json").read_text())
    assert [(r.round, r.kind) for r in result.records] == [
        (0, "ticket"), (1, "ticket"), (1, "random_reinit"), (2, "ticket"), (2, "random_reinit")]
    assert result.record(2).density == pytest.approx(0.8**2, abs=0.02)
    assert (run_dir / "result.csv").read_text().startswith("round,kind,density")
    saved = json.loads((run_dir / "search.json").read_text())
    assert saved["config"]["rounds"] == 2
    # Compiled the fast way; the test set measured at early stop and at the end only.
    from keras_lottery.runtime.speed import fast_compile_settings

    assert saved["compile"]["jit_compile"] is fast_compile_settings()["jit_compile"]
    assert saved["config"]["test_curves"] is False
    assert not any(k.startswith("test_") for k in result.record(1).curves)
    assert {"test_accuracy", "val_accuracy"} <= set(result.record(1).early_stop)
    # Resuming a finished run trains nothing and reports the same records.
    before = (run_dir / "rounds" / "002_ticket.json").stat().st_mtime_ns
    assert cli.main(["run", *TINY, "--controls", "random_reinit", "--out", str(run_dir)]) == 0
    assert (run_dir / "rounds" / "002_ticket.json").stat().st_mtime_ns == before


def test_resume_continues_an_interrupted_run(tmp_path, monkeypatch):
    from keras_lottery.search.ticket_search import TicketSearch

    original = TicketSearch._train_ticket

    def interrupted(self, trainer, round_, masks):
        if round_ == 2:
            raise KeyboardInterrupt  # as if stopped while training round 2
        return original(self, trainer, round_, masks)

    out = tmp_path / "run"
    monkeypatch.setattr(TicketSearch, "_train_ticket", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cli.main(["run", *TINY, "--out", str(out)])
    assert not (out / "rounds" / "002_ticket.json").exists()
    monkeypatch.setattr(TicketSearch, "_train_ticket", original)
    assert cli.main(["run", *TINY, "--out", str(out)]) == 0
    result = SearchResult.from_json((out / "result.json").read_text())
    assert [r.round for r in result.records] == [0, 1, 2]


def test_run_with_a_criterion_budget_and_ablations(tmp_path):
    out = tmp_path / "synflow"
    tiny = [a for a in TINY if a not in ("--rounds", "2")]
    assert cli.main(["run", *tiny, "--criterion", "synflow", "--budget", "erk",
                     "--output-rate", "0.2", "--one-shot", "0.3", "--synflow-iterations", "4",
                     "--controls", "inverted",
                     "signed_constant", "--out", str(out)]) == 0
    result = SearchResult.from_json((out / "result.json").read_text())
    assert [(r.round, r.kind) for r in result.records] == [
        (0, "ticket"), (1, "ticket"), (1, "inverted"), (1, "signed_constant")]
    assert result.record(1).density == pytest.approx(0.3, abs=0.002)
    config = json.loads((out / "search.json").read_text())["config"]
    assert config["budget"] == "erk"
    assert config["criterion"]["name"] == "synflow" and config["criterion"]["iterations"] == 4
    with pytest.raises(SystemExit):
        cli.main(["run", *tiny, "--criterion", "obd", "--out", str(out)])


@pytest.mark.slow  # Compiles with XLA / torch.compile.
def test_test_curves_and_compile_setting(tmp_path):
    out = tmp_path / "curves"
    tiny = [a if a != "2" else "1" for a in TINY]  # One pruned round.
    assert cli.main(["run", *tiny, "--test-curves", "--jit-compile", "false",
                     "--out", str(out)]) == 0
    saved = json.loads((out / "search.json").read_text())
    assert saved["compile"]["jit_compile"] is False and saved["config"]["test_curves"] is True
    record = SearchResult.from_json((out / "result.json").read_text()).record(1)
    assert len(record.curves["test_accuracy"]) == len(record.curves["iteration"]) == 2


def test_a_changed_setting_is_refused(run_dir):
    with pytest.raises(SystemExit, match="differs in"):
        cli.main(["run", *TINY[:-6], "--iterations", "35", "--eval-every", "35",
                  "--limit", "700", "--verbose", "0", "--out", str(run_dir)])


def test_transfer_from_another_run(run_dir, tmp_path):
    import numpy as np

    from keras_lottery.search.run_directory import load_masks

    base = ["run", "--network", "mlp", "--dataset", "mnist1d", "--iterations", "35",
            "--eval-every", "35", "--limit", "350", "--verbose", "0", "--seed", "1"]
    out = tmp_path / "transferred"
    assert cli.main([*base, "--transfer-from", str(run_dir), "--transfer-rounds", "2",
                     "--controls", "random_pruning", "--out", str(out)]) == 0
    result = SearchResult.from_json((out / "result.json").read_text())
    assert [(r.round, r.kind) for r in result.records] == [
        (0, "ticket"), (1, "ticket"), (1, "random_pruning")]
    source, masks = load_masks(run_dir)[2], load_masks(out)
    for path, mask in source.items():
        np.testing.assert_array_equal(masks[1][path], mask)
    assert result.record(1).density == pytest.approx(result.record(1, "random_pruning").density)
    for extra, message in ((["--rounds", "2"], "alone"), (["--rate", "0.5"], "alone"),
                           (["--controls", "inverted"], "without 'inverted'"),
                           (["--transfer-rounds", "1", "1"], "repeats"),
                           (["--transfer-rounds", "5"], r"rounds \[0, 1, 2\]")):
        with pytest.raises(SystemExit, match=message):
            cli.main([*base, "--transfer-from", str(run_dir), *extra, "--out", str(out)])
    with pytest.raises(SystemExit, match="Expected a run directory"):
        cli.main([*base, "--transfer-from", str(tmp_path), "--out", str(tmp_path / "x")])


def test_report_prints_the_table_and_csv(run_dir, capsys):
    assert cli.main(["report", str(run_dir)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["round", "kind", "density"] and len(table) == 6
    assert cli.main(["report", str(run_dir), "--csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("round,kind,density")


def test_plot_writes_png_files(run_dir, tmp_path, capsys):
    assert cli.main(["plot", str(run_dir), "--out", str(tmp_path / "figures")]) == 0
    for name in ["accuracy_curves.png", "early_stop.png"]:
        path = tmp_path / "figures" / name
        assert path.stat().st_size > 5000 and path.read_bytes()[:4] == b"\x89PNG"


def test_clear_errors(tmp_path):
    with pytest.raises(SystemExit, match="--out DIRECTORY is required"):
        cli.main(["run", *TINY])
    with pytest.raises(SystemExit, match="give --preset, or --network and --dataset"):
        cli.main(["run", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="not a run directory"):
        cli.main(["report", str(tmp_path)])


@pytest.mark.slow
def test_console_script_switches_backend(tmp_path):
    """`--backend` takes effect although importing the package imports Keras."""
    other = "jax" if os.environ.get("KERAS_BACKEND", "tensorflow") != "jax" else "torch"
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    done = subprocess.run(
        [sys.executable, "-m", "keras_lottery_cli", "run", *TINY[:4], "--rounds", "1",
         *TINY[6:], "--iterations", "35", "--backend", other, "--out", str(out)],
        capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    saved = json.loads((out / "result.json").read_text())
    assert saved["config"]["backend"] == other
    assert (out / "rounds" / "001_ticket.json").exists()


def test_structured_run_from_the_command_line(tmp_path):
    out = tmp_path / "neurons"
    assert cli.main(["run", *TINY, "--structure", "neurons", "--structure-score", "l2",
                     "--out", str(out)]) == 0
    config = json.loads((out / "search.json").read_text())["config"]
    assert config["structure"] == {"kind": "neurons", "n": None, "m": None, "block": None,
                                   "score": "l2"}
    from keras_lottery.search.run_directory import load_masks

    masks = load_masks(out)[2]
    first = next(mask for path, mask in masks.items() if mask.ndim == 2)
    alive = first.any(axis=0)
    assert 0 < alive.sum() < alive.size and first[:, alive].all()  # Whole neurons.
    # The last ticket out as a smaller plain Keras model, from the directory alone.
    assert cli.main(["export", str(out), "--as", "shrunk", "--out", str(tmp_path / "t.keras")]) == 0
    import keras

    small = keras.models.load_model(tmp_path / "t.keras")
    first_dense = next(layer for layer in small.layers if hasattr(layer, "kernel"))
    assert first_dense.kernel.shape[-1] == alive.sum()
    with pytest.raises(SystemExit):
        cli.main(["run", *TINY, "--structure", "3:3", "--out", str(tmp_path / "bad")])


@pytest.mark.parametrize("argv, environment", [
    (["run", "--backend", "jaxx", "--out", "x"], None),
    (["run", "--backend=tf", "--out", "x"], None),
    (["report", "x"], "pytorch"),
])
def test_an_unknown_backend_is_one_message_before_keras_loads(argv, environment, monkeypatch):
    import keras_lottery_cli

    if environment is not None:
        monkeypatch.setenv("KERAS_BACKEND", environment)
    with pytest.raises(SystemExit, match=r"keras-lottery: expected (--backend|KERAS_BACKEND) "
                                         r"among tensorflow, jax, torch\. Received: '"):
        keras_lottery_cli.main(argv)


@pytest.mark.parametrize("method", ["gradual", "rigl"])
def test_sparse_trains_a_preset_once_to_its_density(tmp_path, method):
    out = tmp_path / method
    argv = ["sparse", "--preset", "mlp_mnist1d", "--method", method, "--density", "0.1",
            "--iterations", "60", "--limit", "600", "--every", "10", "--verbose", "0",
            "--out", str(out)]
    assert cli.main(argv) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["density"] == pytest.approx(0.1, abs=0.002)
    assert result["method"] == method and result["budget"] == (
        "uniform" if method == "gradual" else "erk")
    assert 0 < result["gzip_bytes"] < result["file_bytes"]
    import keras
    import numpy as np

    model = keras.saving.load_model(out / "model.keras")  # Plain Keras, pruned weights zero.
    kernels = [w for w in model.weights if w.path.endswith("kernel")]
    zeros = sum(int((keras.ops.convert_to_numpy(k) == 0).sum()) for k in kernels)
    assert zeros / sum(int(np.prod(k.shape)) for k in kernels) == pytest.approx(0.9, abs=0.002)
    if method != "gradual":
        return
    with pytest.raises(SystemExit, match="--end .* must come after --begin"):
        cli.main([*argv[:-2], "--begin", "0.5", "--end", "0.4", "--out", str(tmp_path / "x")])


def test_stability_of_a_run_directory_measures_it_again(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["run", *TINY, "--rewind-candidates", "0", "35", "--path-points", "3",
            "--out", str(out)]
    assert cli.main(argv) == 0
    result = SearchResult.from_json((out / "result.json").read_text())
    assert [r.start_iteration for r in result.rewind_choice["candidates"]] == [0, 35]
    assert result.rewind_choice["chosen"] in (0, 35) and not result.instability
    # The directory's own command, again with --instability: each round's ticket
    # measured, in the directory where it lies now.
    moved = out.rename(tmp_path / "moved")
    assert cli.main(["stability", str(moved), "--path-points", "3"]) == 0
    assert not out.exists()
    out = moved
    result = SearchResult.from_json((out / "result.json").read_text())
    assert [r.round for r in result.instability] == [0, 1, 2]
    assert all(len(r.curves["alpha"]) == 3 for r in result.instability)
    assert "instability" in capsys.readouterr().out
    # Only options that decide no number may be given with a directory.
    with pytest.raises(SystemExit, match="expected only --path-points"):
        cli.main(["stability", str(out), "--rounds", "3"])
    with pytest.raises(SystemExit, match="expected a run directory"):
        cli.main(["stability", str(tmp_path)])


def test_a_run_keeps_its_command_once_it_trains_and_a_refused_one_leaves_nothing(tmp_path,
                                                                                  monkeypatch):
    from keras_lottery.search.ticket_search import TicketSearch

    refused = tmp_path / "refused"
    with pytest.raises(SystemExit, match="rewind_candidates.*Received: rewind_candidates=9999"):
        cli.main(["run", *TINY, "--rewind-candidates", "0", "9999", "--out", str(refused)])
    assert not refused.exists()  # Refused after the data loaded, before any training.
    out = tmp_path / "run"
    argv = [*TINY, "--rounds", "1", "--out", str(out)]
    with monkeypatch.context() as patch:  # Killed at the end of its first training.
        patch.setattr(TicketSearch, "_save", _killed)
        with pytest.raises(KeyboardInterrupt):
            cli.main(["run", *argv])
    assert json.loads((out / cli.COMMAND_FILE).read_text())["argv"] == argv
    assert cli.main(["run", *argv]) == 0
    assert json.loads((out / cli.COMMAND_FILE).read_text())["argv"] == argv


def _killed(*args):
    raise KeyboardInterrupt
