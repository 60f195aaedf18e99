"""Sweeps: members from settings and lists, checked before anything runs, run
here, on a local Ray (a worker killed mid-training) and on submitit's local
executor, each ending equal to the same member run alone."""

import json
import os
import signal
import socket
import sys
import threading
import time

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery import cli
from keras_lottery.search.run_directory import load_masks, load_result
from keras_lottery.search.run_lock import LOCK, OWNER_VARIABLE, RunBusyError, held
from keras_lottery.sweeps import engines
from keras_lottery.sweeps.sweep import SWEEP_FILE, Sweep

# torch.compile would take most of a short member's time, in every worker again.
TINY = dict(network="mlp", dataset="mnist1d", rounds=1, iterations=70, eval_every=35,
            limit=700, verbose=0,
            jit_compile="false" if keras.backend.backend() == "torch" else "fast")


def _same_runs(a, b):
    """Every record (but its wall time) and every mask set equal."""
    first, second = load_result(a), load_result(b)
    assert len(first.records) == len(second.records) > 0
    for x, y in zip(first.records, second.records):
        assert (x.round, x.kind, x.density, x.final, x.early_stop) == (
            y.round, y.kind, y.density, y.final, y.early_stop)
    masks, again = load_masks(a), load_masks(b)
    assert masks.keys() == again.keys()
    for round_ in masks:
        for path in masks[round_]:
            np.testing.assert_array_equal(masks[round_][path], again[round_][path])


def test_members_are_every_combination_named_by_their_values(tmp_path):
    sweep = Sweep(tmp_path / "s", over={"criterion": ["large_final", "magnitude_increase"],
                                        "seed": [0, 1]}, preset="lenet_300_100_mnist",
                  rounds=2, instability=True, controls=["random_reinit"])
    assert [m.name for m in sweep.members] == [
        "criterion=large_final,seed=0", "criterion=large_final,seed=1",
        "criterion=magnitude_increase,seed=0", "criterion=magnitude_increase,seed=1"]
    first = sweep.members[0]
    assert first.directory == (tmp_path / "s" / "criterion=large_final" / "seed_0").absolute()
    assert list(first.argv) == [
        "--preset", "lenet_300_100_mnist", "--rounds", "2", "--instability", "--controls",
        "random_reinit", "--criterion", "large_final", "--seed", "0", "--out",
        str(first.directory)]
    # Only seeds swept: the layout of `run --seeds`; no seeds: one folder per value.
    assert Sweep(tmp_path / "t", over={"seed": [3]}, preset="x").members[0].directory == (
        tmp_path / "t" / "seed_3").absolute()
    several = Sweep(tmp_path / "u", over={"one-shot": [[0.2, 0.05], [0.1]]}, flags=["--preset",
                                                                                 "x"])
    assert [m.directory.name for m in several.members] == ["one_shot=0.2+0.05", "one_shot=0.1"]
    assert list(several.members[0].argv[:5]) == ["--preset", "x", "--one-shot", "0.2", "0.05"]


@pytest.mark.parametrize("arguments, match", [
    (dict(over={}), "Expected `over` a dict of settings to lists of values"),
    (dict(over={"seed": []}), r"over\['seed'\].* at least one value"),
    (dict(over={"seed": [0, 1, 0]}), r"over\['seed'\].* without repeats.*repeats 0"),
    (dict(over={"seed": [1, "01"]}), r"over\['seed'\].* without repeats.*repeats 01, 1"),
    (dict(over={"seed": [0]}, flags="--rounds 2"), "`flags` a list of command-line words"),
    (dict(over={"seed": 3}), r"over\['seed'\].* a list of values"),
    (dict(over={"colour": [1, 2]}), "among `keras-lottery run`'s flags.*Received: 'colour'"),
    (dict(over={"seeds": [[0, 1]]}), r"without `seeds`: use over=\{'seed'"),
    (dict(over={"seed": [0]}, out="x"), "without `out`: use the sweep's directory"),
    (dict(over={"seed": [0]}, seed=1), "either swept .* or shared, not both"),
    (dict(over={"seed": [0]}, flags=["--seed", "1"]), "`flags` without --seed: it is swept"),
    (dict(over={"seed": [0]}, flags=["--colour"]), "unrecognized arguments: --colour"),
    (dict(over={"seed": [0]}, instability=1), "`instability` True or False"),
    (dict(over={"rounds": [[1, 2]]}), "`rounds` one value"),
])
def test_a_bad_sweep_is_refused_naming_what(tmp_path, arguments, match):
    with pytest.raises(ValueError, match=match):
        Sweep(tmp_path / "s", **arguments)
    assert not (tmp_path / "s").exists()


def test_a_member_the_search_would_refuse_is_refused_before_any_runs(tmp_path):
    with pytest.raises(ValueError, match=r"`over\['rate'\]` values that `keras-lottery run` "
                       r"takes. Received: 1.5 \(argument --rate: .*\[0, 1\)"):
        Sweep(tmp_path / "s", over={"rate": [0.5, 1.5]}, **TINY)
    rules = Sweep(tmp_path / "s", over={"criterion": ["large_final", "snip"]}, **TINY)
    with pytest.raises(ValueError, match="member 'criterion=snip': Expected `one_shot` "
                       "densities with criterion 'snip'"):
        rules.run()
    assert not (tmp_path / "s").exists()  # Not even the first, good member ran.
    unknown = Sweep(tmp_path / "s", over={"network": ["mlp", "lenet_301"]},
                    **{k: v for k, v in TINY.items() if k != "network"})
    with pytest.raises(ValueError, match="member 'network=lenet_301': no preset for network"):
        unknown.check()
    unknown = Sweep(tmp_path / "s", over={"dataset": ["mnist1d", "imagenet"]},
                    **{k: v for k, v in TINY.items() if k != "dataset"})
    with pytest.raises(ValueError, match="member 'dataset=imagenet': Expected --dataset among"):
        unknown.check()
    assert not (tmp_path / "s").exists()


def test_a_local_sweep_runs_each_member_as_run_would_and_reports_it(tmp_path, capsys):
    sweep = Sweep(tmp_path / "s", over={"rate": [0.5], "seed": [0, 1]}, **TINY)
    results = sweep.run()
    assert list(results) == ["rate=0.5,seed=0", "rate=0.5,seed=1"]
    alone = tmp_path / "alone"
    assert cli.main(["run", *sweep.members[1].argv[:-2], "--out", str(alone)]) == 0
    _same_runs(sweep.members[1].directory, alone)
    described = json.loads((tmp_path / "s" / SWEEP_FILE).read_text())
    assert [m["directory"] for m in described["members"]] == ["rate=0.5/seed_0",
                                                              "rate=0.5/seed_1"]
    # Run again: everything on file, nothing trains; report averages the seeds.
    capsys.readouterr()
    again = sweep.run(verbose=False)
    assert [r.records for r in again.values()] == [r.records for r in results.values()]
    assert cli.main(["report", str(tmp_path / "s")]) == 0
    report = capsys.readouterr().out
    assert "2 seeds [0, 1]" in report


def test_a_member_held_by_another_process_is_skipped_and_said(tmp_path, capsys):
    sweep = Sweep(tmp_path / "s", over={"seed": [0, 1]}, **TINY)
    busy = sweep.members[0].directory
    busy.mkdir(parents=True)
    (busy / LOCK).write_text(json.dumps({"host": "elsewhere", "pid": 1, "since": 0}))
    results = sweep.run()
    assert list(results) == ["seed=1"]
    assert "seed=0 skipped" in capsys.readouterr().out


def test_a_member_that_fails_stops_a_local_sweep_naming_it(tmp_path):
    sweep = Sweep(tmp_path / "s", over={"seed": [0, 1]}, preset="lenet_300_100_mnist",
                  data_dir=tmp_path / "no data here", verbose=0)
    with pytest.raises(engines.MemberFailed, match=r"member .*seed_0: .*no data here"):
        sweep.run(verbose=False)
    assert not (tmp_path / "s" / "seed_1").exists()


def test_the_command_line_sweeps_its_over_flags(tmp_path, capsys):
    out = tmp_path / "s"
    flags = ["--network", "mlp", "--dataset", "mnist1d", "--iterations", "70",
             "--eval-every", "35", "--limit", "700"]
    assert cli.main(["sweep", *flags, "--over", "one-shot", "0.5 0.2", "--over",
                     "criterion", "large_init", "--out", str(out), "--verbose", "0"]) == 0
    member = out / "one_shot=0.5+0.2,criterion=large_init"
    assert [r.density for r in load_result(member).tickets()] == pytest.approx(
        [1.0, 0.5, 0.2], abs=0.01)
    assert "1 of 1 members on file" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="--address.*with an engine that takes them"):
        cli.main(["sweep", *flags, "--over", "seed", "0", "--address", "auto",
                  "--out", str(out)])
    with pytest.raises(SystemExit, match=r"sweep: argument --rate: expected a number in"):
        cli.main(["sweep", *flags, "--rate", "2", "--over", "seed", "0", "--out", str(out)])
    with pytest.raises(SystemExit):
        cli.main(["sweep", *flags, "--over", "seed", "0", "--engine", "dask", "--out",
                  str(out)])
    assert "invalid choice: 'dask'" in capsys.readouterr().err


def test_engines_refuse_what_they_cannot_run(monkeypatch):
    with pytest.raises(ValueError, match=r"`engine` among \['local', 'ray', 'slurm'\]"):
        engines.named("dask")
    real = __import__("importlib").import_module

    def missing(name, *args):
        if name in ("ray", "submitit"):
            raise ImportError(name)
        return real(name, *args)

    with monkeypatch.context() as patch:
        patch.setattr("importlib.import_module", missing)
        with pytest.raises(ValueError, match=r"pip install 'keras-lottery\[ray\]'"):
            engines.Ray().check()
        with pytest.raises(ValueError, match=r"pip install 'keras-lottery\[slurm\]'"):
            engines.Slurm().check()
    with pytest.raises(ValueError, match="Expected `cpus` > 0. Received: cpus=0"):
        engines.Ray(cpus=0)
    with pytest.raises(ValueError, match="`cluster` among"):
        engines.Slurm(cluster="pbs")


def test_a_ray_address_that_does_not_answer_fails_within_seconds():
    pytest.importorskip("ray")
    # A server that takes the connection and never answers, as a wrong or hung host.
    silent = socket.create_server(("127.0.0.1", 0))
    address = f"127.0.0.1:{silent.getsockname()[1]}"
    start = time.monotonic()
    try:
        with pytest.raises(ValueError, match=f"Ray cluster answering at `address`.*"
                           f"'{address}', which did not answer within 1 s"):
            engines.Ray(address=address, connect_timeout=1).check()
    finally:
        silent.close()
    with pytest.raises(ValueError, match="'127.0.0.1:9'.*ConnectionRefusedError"):
        engines.Ray(address="127.0.0.1:9").check()  # Closed: at once.
    with pytest.raises(ValueError, match="`address` 'host:port'"):
        engines.Ray(address="nowhere").check()
    assert time.monotonic() - start < 5


def test_an_engine_attempt_takes_over_its_earlier_attempts_lock_from_any_host(tmp_path,
                                                                              monkeypatch):
    (tmp_path / LOCK).write_text(json.dumps({"host": "node-7", "pid": 1, "since": 0,
                                             "owner": "ray-1"}))
    with pytest.raises(RunBusyError, match="node-7"):  # No owner: another host's, kept.
        with held(tmp_path):
            pass
    monkeypatch.setenv(OWNER_VARIABLE, "ray-2")
    with pytest.raises(RunBusyError):  # Another engine's attempt: kept.
        with held(tmp_path):
            pass
    monkeypatch.setenv(OWNER_VARIABLE, "ray-1")
    with held(tmp_path):
        assert json.loads((tmp_path / LOCK).read_text())["owner"] == "ray-1"
    assert not (tmp_path / LOCK).exists()
    # On its own host the owner's process is asked: a live one keeps its lock.
    (tmp_path / LOCK).write_text(json.dumps({"host": socket.gethostname(),
                                             "pid": os.getppid(), "since": 0, "owner": "ray-1"}))
    with pytest.raises(RunBusyError):
        with held(tmp_path):
            pass


class _Recording:
    """An engine that runs nothing: the members it was given."""

    name = "recording"

    def __init__(self):
        self.runs = []

    def check(self):
        pass

    def run(self, members, backend, directory, owner, verbose=True):
        self.runs.append(([m.name for m in members], owner))


def test_a_sweep_run_again_adds_members_and_refuses_other_shared_settings(tmp_path):
    engine = _Recording()
    Sweep(tmp_path / "s", over={"seed": [0, 1]}, **TINY).run(engine)
    Sweep(tmp_path / "s", over={"seed": [2]}, **TINY).run(engine)
    described = json.loads((tmp_path / "s" / SWEEP_FILE).read_text())
    assert [m["name"] for m in described["members"]] == ["seed=0", "seed=1", "seed=2"]
    # What decides no number may change: how much is printed, where the data lies.
    # Whether a round's trainings train side by side changes no number either.
    Sweep(tmp_path / "s", over={"seed": [1]}, flags=["--verbose", "2", "--joint"],
          **dict(TINY, verbose=None, data_dir=tmp_path)).run(engine)
    # One owner for every run of the sweep: a rerun takes over its earlier attempts' locks.
    assert engine.runs[0][1] == engine.runs[1][1] == described["owner"]
    with pytest.raises(ValueError, match="shared settings of the sweep already in .*other "
                       "`settings`"):
        Sweep(tmp_path / "s", over={"seed": [3]}, **dict(TINY, rounds=2)).run(engine)
    with pytest.raises(ValueError, match="other `swept`"):
        Sweep(tmp_path / "s", over={"rate": [0.5]}, **TINY).run(engine)
    assert len(engine.runs) == 3
    # No member on file yet: report says so rather than printing nothing.
    with pytest.raises(SystemExit, match="no member of the sweep there has started yet"):
        cli.main(["report", str(tmp_path / "s")])


def test_the_command_line_reads_flags_without_values_and_refuses_a_repeated_over(
        tmp_path, monkeypatch):
    swept = []
    monkeypatch.setattr(Sweep, "run", lambda self, engine: swept.append(self) or {})
    flags = ["--network", "mlp", "--dataset", "mnist1d", "--out", str(tmp_path / "s")]
    assert cli.main(["sweep", *flags, "--over", "test-curves", "true", "false"]) == 0
    first, second = swept[0].members
    assert "--test-curves" in first.argv and "--test-curves" not in second.argv
    with pytest.raises(SystemExit, match="--over test-curves values true or false. "
                       "Received: 'maybe'"):
        cli.main(["sweep", *flags, "--over", "test-curves", "maybe"])
    with pytest.raises(SystemExit, match="each --over SETTING once. Received --over seed twice"):
        cli.main(["sweep", *flags, "--over", "seed", "0", "--over", "seed", "1"])


def test_a_worker_passes_on_an_exit_by_number_and_names_its_member_otherwise(monkeypatch):
    monkeypatch.setenv(OWNER_VARIABLE, "mine")
    argv = ["--out", "somewhere"]
    backend = keras.backend.backend()
    # submitit requeues a preempted task, then exits with a number: not a failure.
    monkeypatch.setattr(cli, "run_flags", lambda flags: sys.exit(-1))
    with pytest.raises(SystemExit) as exited:
        engines.run_member(argv, backend, os.getcwd(), owner="ray-1")
    assert exited.value.code == -1
    assert os.environ[OWNER_VARIABLE] == "mine"  # Put back as it was.
    monkeypatch.setattr(cli, "run_flags", lambda flags: sys.exit("keras-lottery run: no"))
    with pytest.raises(engines.MemberFailed, match="^member somewhere: no$"):
        engines.run_member(argv, backend, os.getcwd())
    with pytest.raises(engines.MemberFailed, match="Expected a worker on the sweep's"):
        engines.run_member(argv, "tensorflow" if backend != "tensorflow" else "jax", ".")


def test_a_slurm_failure_names_the_tasks_own_error():
    report = ("Job (task=0) failed during processing with trace:\n-----\nTraceback (most "
              "recent call last):\n  File \"x.py\", line 1\nValueError: inner\n\nThe above "
              "exception was the direct cause of the following exception:\n\n"
              "keras_lottery.sweeps.engines.MemberFailed: member d: out of data\n-----\n"
              "You can check full logs at paths:\n  - /logs/0_log.err\n  - /logs/0_log.out")
    assert engines._task_error(report) == (
        "keras_lottery.sweeps.engines.MemberFailed: member d: out of data")


def test_a_slurm_task_requeues_itself_with_its_member():
    pytest.importorskip("submitit")
    task = engines._Requeued("jax", "/tmp", "slurm-1")
    again = task.checkpoint(["--out", "x"])
    assert again.function is task and again.args == (["--out", "x"],)


@pytest.mark.slow  # A local Ray: workers start, import Keras and train.
def test_a_ray_sweep_whose_worker_is_killed_ends_equal_to_running_alone(tmp_path):
    pytest.importorskip("ray")
    settings = dict(TINY, rounds=2, iterations=280, eval_every=140)
    over = {"rate": [0.5, 0.3], "seed": [0, 1]}
    alone = Sweep(tmp_path / "alone", over=over, **settings)
    alone.run(verbose=False)
    sweep = Sweep(tmp_path / "ray", over=over, **settings)
    killed = []

    def kill_one_mid_training():
        # A member with a finished round and its lock held: its worker is mid-search.
        deadline = time.monotonic() + 300
        while not killed and time.monotonic() < deadline:
            for member in sweep.members:
                lock, records = member.directory / LOCK, member.directory / "rounds"
                if lock.exists() and records.exists() and any(records.glob("*_ticket.json")):
                    try:
                        pid = json.loads(lock.read_text())["pid"]
                    except (OSError, ValueError, KeyError):
                        continue
                    finished = {f: f.stat().st_mtime_ns for f in records.glob("*.json")}
                    os.kill(pid, signal.SIGKILL)
                    killed.append((member.name, finished))
                    return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_one_mid_training, daemon=True)
    killer.start()
    results = sweep.run(engines.Ray(cpus=1, retries=2), verbose=False)
    killer.join(timeout=1)
    assert killed, "no worker was caught mid-search: lengthen the members"
    assert list(results) == [m.name for m in sweep.members]
    for member, again in zip(alone.members, sweep.members):
        _same_runs(member.directory, again.directory)
    name, finished = killed[0]
    assert len(results[name].tickets()) == 3  # Every round, the killed one's included.
    # Resumed, not run again: what the killed worker had finished was not rewritten.
    assert {f: f.stat().st_mtime_ns for f in finished} == finished


@pytest.mark.slow  # submitit's local executor: a process per task.
def test_a_slurm_array_on_submitits_local_executor_equals_running_alone(tmp_path):
    pytest.importorskip("submitit")
    over = {"seed": [0, 1]}
    alone = Sweep(tmp_path / "alone", over=over, **TINY)
    alone.run(verbose=False)
    sweep = Sweep(tmp_path / "slurm", over=over, **TINY)
    results = sweep.run(engines.Slurm(cluster="local", timeout_min=10), verbose=False)
    assert list(results) == ["seed=0", "seed=1"]
    for member, again in zip(alone.members, sweep.members):
        _same_runs(member.directory, again.directory)
    assert (tmp_path / "slurm" / ".submitit").is_dir()
    assert kl.Sweep is Sweep
