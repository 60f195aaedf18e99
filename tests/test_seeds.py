"""Several seeds of one search: aggregation, `--seeds`, and one process per run directory."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from keras_lottery import cli
from keras_lottery.search.results import RoundRecord, SearchResult
from keras_lottery.search.run_directory import RunDirectory, load_result
from keras_lottery.search.run_lock import LOCK, TAKEOVER, RunBusyError

TINY = ["--network", "mlp", "--dataset", "mnist1d", "--rounds", "1", "--iterations", "70",
        "--eval-every", "35", "--limit", "700", "--verbose", "0"]


def _result(seed, accuracies, rounds=2, grid=(0, 10)):
    records = []
    for round_ in range(rounds):
        accuracy = accuracies[round_]
        records.append(RoundRecord(
            round=round_, kind="ticket", density=0.8 ** round_, layer_densities={},
            iterations=20, final={"val_loss": 1.0 - accuracy, "test_accuracy": accuracy},
            early_stop={"iteration": 10 * (seed + 1), "test_accuracy": accuracy + 0.01},
            curves={"iteration": list(grid), "val_loss": [2.0, 1.0 - accuracy]},
            wall_time=1.0 + seed))
    return SearchResult(records, {"seed": seed, "rounds": rounds, "backend": "jax",
                                  "eval_every": 10})


def test_aggregate_gives_mean_std_min_max_per_round():
    results = [_result(0, [0.90, 0.80]), _result(1, [0.92, 0.86]), _result(2, [0.94, 0.83])]
    seeds = SearchResult.aggregate(results)
    assert seeds.seeds == [0, 1, 2] and seeds.config["seeds"] == [0, 1, 2]
    record = seeds.record(1)
    spread = record.spread["early_stop_test_accuracy"]
    values = np.array([0.81, 0.87, 0.84])
    assert spread.mean == pytest.approx(values.mean())
    assert spread.std == pytest.approx(values.std(ddof=1))
    assert (spread.min, spread.max, spread.n) == (pytest.approx(0.81), pytest.approx(0.87), 3)
    assert record.early_stop["test_accuracy"] == pytest.approx(values.mean())
    assert record.early_stop_iteration == pytest.approx(20.0)
    assert record.wall_time == pytest.approx(2.0)
    # Curves on one grid average point by point, with their range.
    assert record.curves["val_loss"] == pytest.approx([2.0, 1 - np.mean([0.80, 0.86, 0.83])])
    assert record.curves_min["val_loss"][1] == pytest.approx(0.14)
    assert record.curves_max["val_loss"][1] == pytest.approx(0.20)
    table = seeds.summary()
    assert "3 seeds [0, 1, 2]" in table and "0.8400 ± 0.0300 [0.8100, 0.8700]" in table
    header, *rows = seeds.to_csv().splitlines()
    assert header.startswith("round,kind,seeds,density_mean")
    assert "early_stop_test_accuracy_std" in header and len(rows) == 2


def test_aggregate_counts_the_seeds_that_got_there():
    # Seed 1 is still running: round 1 averages over seed 0 alone.
    seeds = SearchResult.aggregate([_result(0, [0.9, 0.8]), _result(1, [0.9], rounds=1)])
    assert seeds.record(0).seeds == [0, 1] and seeds.record(1).seeds == [0]
    assert seeds.record(1).spread["final_test_accuracy"].std == 0.0
    # Different evaluation grids: no averaged curves, the numbers still are.
    other = SearchResult.aggregate([_result(0, [0.9, 0.8]), _result(1, [0.9, 0.8], grid=(0, 5))])
    assert other.record(1).curves == {} and other.record(1).final["test_accuracy"] == 0.8


def test_aggregate_refuses_what_is_not_one_search_over_seeds():
    with pytest.raises(ValueError, match="at least one SearchResult"):
        SearchResult.aggregate([])
    with pytest.raises(ValueError, match=r"distinct seeds. Received seeds \[0, 0\]"):
        SearchResult.aggregate([_result(0, [0.9, 0.8]), _result(0, [0.9, 0.8])])
    changed = _result(1, [0.9, 0.8])
    changed.config["eval_every"] = 5
    with pytest.raises(ValueError, match="differ only in their seed. Received seed 1 with "
                                         "eval_every=5 against 10 for seed 0"):
        SearchResult.aggregate([_result(0, [0.9, 0.8]), changed])


def _dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_run_directory_is_held_by_one_process(tmp_path):
    directory = RunDirectory(tmp_path / "run")
    with directory.claimed():
        lock = json.loads((tmp_path / "run" / LOCK).read_text())
        assert lock["pid"] == os.getpid() and lock["host"] == socket.gethostname()
    assert not (tmp_path / "run").exists()  # Nothing written: nothing left.
    (tmp_path / "run").mkdir()
    held = {"host": "elsewhere", "pid": 12, "since": 0}
    (tmp_path / "run" / LOCK).write_text(json.dumps(held))
    with pytest.raises(RunBusyError, match=r"held by process 12 on 'elsewhere'.*delete"):
        with directory.claimed():
            pass
    alive = {"host": socket.gethostname(), "pid": os.getppid(), "since": 0}
    (tmp_path / "run" / LOCK).write_text(json.dumps(alive))
    with pytest.raises(RunBusyError, match=f"held by process {os.getppid()}"):
        with directory.claimed():
            pass
    # Left by a process of this host that was killed: taken over.
    dead = {**alive, "pid": _dead_pid()}
    (tmp_path / "run" / LOCK).write_text(json.dumps(dead))
    with directory.claimed():
        assert json.loads((tmp_path / "run" / LOCK).read_text())["pid"] == os.getpid()
    assert not (tmp_path / "run" / LOCK).exists()
    # ...but not while another process is taking it over (a fresh takeover file)...
    (tmp_path / "run" / LOCK).write_text(json.dumps(dead))
    (tmp_path / "run" / TAKEOVER).write_text("{}")
    with pytest.raises(RunBusyError, match=f"held by process {dead['pid']}"):
        with directory.claimed():
            pass
    # ...unless that one was killed in the middle of it, long ago.
    os.utime(tmp_path / "run" / TAKEOVER, (0, 0))
    with directory.claimed():
        # A lock that is no longer ours (deleted by hand, taken by another) is left alone.
        other = {**held, "token": "theirs"}
        (tmp_path / "run" / LOCK).write_text(json.dumps(other))
    assert json.loads((tmp_path / "run" / LOCK).read_text()) == other
    assert not (tmp_path / "run" / TAKEOVER).exists()


def test_a_refused_run_leaves_no_folders(tmp_path):
    directory = RunDirectory(tmp_path / "a" / "b" / "run")
    with pytest.raises(RuntimeError):
        with directory.claimed():
            raise RuntimeError("refused")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow  # Two searches end to end through the command line.
def test_seeds_run_share_out_and_report_mean_and_spread(tmp_path, capsys):
    out = tmp_path / "runs"
    # Seed 1 is being run by another machine: this process skips it.
    (out / "seed_1").mkdir(parents=True)
    (out / "seed_1" / LOCK).write_text(json.dumps({"host": "other", "pid": 1, "since": 0}))
    assert cli.main(["run", *TINY, "--seeds", "0", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "seed 1 skipped" in printed and "seeds [1] were running elsewhere" in printed
    assert "1 seeds [0]" in printed
    assert not (out / "seed_1" / "search.json").exists()
    (out / "seed_1" / LOCK).unlink()  # The other machine is gone.
    assert cli.main(["run", *TINY, "--seeds", "0", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    results = [load_result(out / f"seed_{s}") for s in (0, 1)]
    assert [r.config["seed"] for r in results] == [0, 1]
    assert results[0].record(1).final != results[1].record(1).final  # Two seeds, two searches.
    assert (out / "seed_0" / "result.csv").exists() and (out / "aggregate.csv").exists()
    assert cli.main(["report", str(out)]) == 0
    table = capsys.readouterr().out
    mean = np.mean([r.record(1).early_stop["test_accuracy"] for r in results])
    assert "2 seeds [0, 1]" in table and f"{mean:.4f} ± " in table
    assert cli.main(["report", str(out / "seed_0"), str(out / "seed_1"), "--csv"]) == 0
    assert capsys.readouterr().out.startswith("round,kind,seeds,")
    assert cli.main(["plot", str(out), "--out", str(tmp_path / "figures")]) == 0
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == [
        "accuracy_curves.png", "early_stop.png"]
    # Only the given seeds: another seed folder of other settings in OUT is not averaged in.
    assert cli.main(["run", *TINY, "--iterations", "35", "--seeds", "7", "--out", str(out)]) == 0
    assert "1 seeds [7]" in capsys.readouterr().out
    # Run folders of other settings, and the same seed twice, are reported side by side.
    assert cli.main(["report", str(out)]) == 0
    table = capsys.readouterr().out
    assert table.count("# ") == 2 and "2 seeds [0, 1]" in table
    assert f"# {out / 'seed_7'}" in table
    assert cli.main(["report", str(out / "seed_0"), str(out / "seed_0"), "--csv"]) == 0
    joined = capsys.readouterr().out.splitlines()
    assert joined[0].startswith("run,round,kind,")
    assert {row.split(",")[0] for row in joined[1:]} == {str(out / "seed_0"),
                                                         f"{out / 'seed_0'} (2)"}
    with pytest.raises(SystemExit, match="--seed or --seeds, not both"):
        cli.main(["run", *TINY, "--seed", "3", "--seeds", "0", "1", "--out", str(out)])
    with pytest.raises(SystemExit, match="repeats a seed"):
        cli.main(["run", *TINY, "--seeds", "0", "0", "--out", str(out)])


@pytest.mark.slow  # A search on every device, end to end.
def test_run_data_parallel(tmp_path):
    import keras

    out = tmp_path / "dp"
    if keras.backend.backend() == "torch":
        with pytest.raises(SystemExit, match="Expected the JAX or TensorFlow backend.*torch"):
            cli.main(["run", *TINY, "--data-parallel", "--out", str(out)])
        assert not out.exists()  # Refused before any data or training.
        return
    assert cli.main(["run", *TINY, "--data-parallel", "--out", str(out)]) == 0
    assert len(load_result(out).records) == 2
    assert keras.distribution.distribution() is None
