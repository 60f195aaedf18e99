"""The `keras-lottery` command: run a search, report on it, plot it.

    keras-lottery run --preset lenet_300_100_mnist --out runs/lenet --backend jax
    keras-lottery run --network conv2 --dataset fashion_mnist --rounds 5 --rate 0.2 \
        --controls random_reinit --out runs/conv2
    keras-lottery run --preset lenet_300_100_mnist --criterion snip --budget global \
        --output-rate 0.2 --one-shot 0.2 0.05 --controls random_pruning --out runs/snip
    keras-lottery run --preset lenet_300_100_mnist --seeds 0 1 2 3 4 --out runs/lenet5
    keras-lottery report runs/lenet
    keras-lottery report runs/lenet5          # mean ± std [min, max] over its seed_* runs
    keras-lottery plot runs/lenet --out figures/
    keras-lottery export runs/filters --round 5 --as shrunk --out ticket.keras
    keras-lottery sparse --preset lenet_300_100_mnist --method rigl --density 0.05 --out runs/rigl
"""

import argparse
import contextlib
import csv
import functools
import io
import math
import os
import pathlib
import sys

from keras_lottery import presets
from keras_lottery.pruning.criteria import Criterion
from keras_lottery.pruning.rules import PruneRates
from keras_lottery.search.export import FORMS
from keras_lottery.search.results import SearchResult, csv_text
from keras_lottery.search.run_lock import RunBusyError
from keras_lottery.search.settings import FLAGGED
from keras_lottery.presets import TRAINING_SETTINGS
from keras_lottery.structured.structures import SCORES, as_structure
from keras_lottery.sweeps.engines import MemberFailed

BACKENDS = ("tensorflow", "jax", "torch")
SPARSE_METHODS = ("gradual", "set", "rigl")


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(
        prog="keras-lottery", description="Lottery-ticket searches for Keras 3.")
    commands = main.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run (or resume) a search")
    _run_arguments(run)

    stability = commands.add_parser(
        "stability", help="measure the instability of a run's tickets (two copies, the line "
        "between them), or run a preset's search measuring it; prints the table")
    stability.add_argument("directory", nargs="?", help="a run directory made by `keras-lottery "
                           "run`: its command runs again with --instability (nothing "
                           "finished trains again); or give run's flags instead, with --out")
    _run_arguments(stability)

    sweep = commands.add_parser(
        "sweep", allow_abbrev=False, help="run a search for every combination of settings (--over), here, on Ray "
        "or on Slurm; every other flag is run's, shared by every member")
    sweep.add_argument("--over", nargs="+", action="append", required=True,
                       metavar=("SETTING", "VALUE"),
                       help="a run flag and its values, e.g. --over seed 0 1 2 --over "
                       "criterion snip synflow; a flag taking several values takes each "
                       "value quoted: --over one-shot '0.2 0.05' 0.1")
    sweep.add_argument("--out", required=True, help="the sweep's folder: one run directory "
                       "per member in it; rerun to resume")
    sweep.add_argument("--backend", choices=BACKENDS,
                       help="Keras backend of every member (default: KERAS_BACKEND, else "
                       "tensorflow)")
    sweep.add_argument("--engine", choices=("local", "ray", "slurm"), default="local",
                       help="local: one member after another here (default); ray: a Ray task "
                       "each (pip install 'keras-lottery[ray]'); slurm: a Slurm job array "
                       "(pip install 'keras-lottery[slurm]')")
    sweep.add_argument("--cpus", type=_positive, help="ray, slurm: CPUs per member (default 1)")
    sweep.add_argument("--gpus", type=_integer(0), help="ray, slurm: GPUs per member "
                       "(default 0)")
    sweep.add_argument("--address", help="ray: a running cluster's address (host:port or "
                       "auto); default: a local Ray started for the sweep")
    sweep.add_argument("--retries", type=_integer(0), help="ray: runs again of a member whose "
                       "worker or node died (default 3)")
    sweep.add_argument("--partition", help="slurm: the partition")
    sweep.add_argument("--timeout-min", type=_integer(1), help="slurm: minutes per task before "
                       "it is requeued (default 60)")
    sweep.add_argument("--parallel", type=_integer(1), help="slurm: tasks running at once")
    sweep.add_argument("--setup", action="append", help="slurm: a shell line run before each "
                       "task (repeatable), e.g. 'module load cuda'")
    sweep.add_argument("--submitit-cluster", choices=("slurm", "local"), default="slurm",
                       help="slurm: 'local' runs the array as local processes (a trial run)")
    sweep.add_argument("--verbose", type=_integer(0), default=2, choices=(0, 1, 2),
                       help="each member's training output (as run's --verbose)")

    report = commands.add_parser(
        "report", help="print a table of saved runs (several seeds: mean and spread)")
    report.add_argument("directories", nargs="+", metavar="directory",
                        help="run directories, or folders of seed_* run directories")
    report.add_argument("--csv", action="store_true", help="print CSV instead of a table")

    plot = commands.add_parser("plot", help="draw saved runs' figures as PNG files")
    plot.add_argument("directories", nargs="+", metavar="directory",
                      help="run directories, or folders of seed_* run directories; runs "
                      "differing only in their seed are drawn as mean and [min, max]")
    plot.add_argument("--out", required=True, help="folder for the PNG files")

    export = commands.add_parser(
        "export", help="save a round's ticket (its masks on the rewind weights) as a .keras file")
    export.add_argument("directory", help="a run directory")
    export.add_argument("--round", type=_integer(0), help="default: the last finished round")
    export.add_argument("--as", dest="form", choices=FORMS, default="plain",
                        help="plain: stock Keras layers, pruned weights zero (default); shrunk: "
                        "pruned neurons, filters and heads removed (keras_lottery.shrink); "
                        "masked: the masked layers, to train with the masks fixed")
    export.add_argument("--out", required=True, help="the .keras file to write (replaced if "
                        "it exists)")
    export.add_argument("--import", dest="imports", nargs="+", default=[], metavar="MODULE",
                        help="modules to import first: those that register the model's own "
                        "layers, loss or metrics with Keras")
    export.add_argument("--backend", choices=BACKENDS,
                        help="Keras backend (default: KERAS_BACKEND, else tensorflow)")
    sparse = commands.add_parser(
        "sparse", help="train a preset's network once, ending sparse: gradual pruning, SET "
        "or RigL inside one fit (rerun to resume)")
    sparse.add_argument("--preset", required=True, help="a preset name (see run --list-presets)")
    sparse.add_argument("--method", choices=SPARSE_METHODS, default="gradual",
                        help="gradual: magnitude pruning on a polynomial schedule (Zhu & Gupta, "
                        "tfmot); set, rigl: dynamic sparse training at a fixed density")
    sparse.add_argument("--density", type=_fraction("(0, 1)"), required=True,
                        help="share of the prunable weights kept at the end")
    sparse.add_argument("--budget", choices=("uniform", "global", "erk"),
                        help="how layers share the density (default: uniform for gradual, "
                        "erk for set and rigl)")
    sparse.add_argument("--every", type=_integer(1), default=100,
                        help="steps between mask updates (default 100)")
    sparse.add_argument("--begin", type=_fraction("[0, 1)"), default=0.1,
                        help="gradual: share of the training before pruning begins (default 0.1)")
    sparse.add_argument("--end", type=_fraction("(0, 1)"),
                        help="gradual: share of the training at which the final sparsity is "
                        "reached; set, rigl: after which masks stay fixed (default 0.6 for "
                        "gradual, 0.75 for set and rigl)")
    sparse.add_argument("--out", required=True, help="folder for result.json and model.keras")
    for setting in TRAINING_SETTINGS:
        if setting.flag and setting.name in ("iterations", "batch_size", "learning_rate"):
            _add_flag(sparse, setting)
    sparse.add_argument("--seed", type=_integer(0), default=0)
    sparse.add_argument("--limit", type=_integer(1), help="train on the first N examples only")
    sparse.add_argument("--data-dir", help="local copy of the data (else KERAS_LOTTERY_DATA, "
                        "tfds)")
    sparse.add_argument("--backend", choices=BACKENDS,
                        help="Keras backend (default: KERAS_BACKEND, else tensorflow)")
    sparse.add_argument("--verbose", type=_integer(0), default=2, choices=(0, 1, 2))
    return main


class _RaisingParser(argparse.ArgumentParser):
    """A parser whose refusals are ValueErrors (for checks of flags given as data)."""

    def error(self, message):
        raise ValueError(message)


def run_parser() -> argparse.ArgumentParser:
    """`keras-lottery run`'s flags alone; a bad flag raises ValueError, naming it.
    Its `run_flags` attribute lists the flags' argparse actions."""
    run = _RaisingParser(prog="keras-lottery run", add_help=False)
    run.run_flags = _run_arguments(run)
    return run


class _Recording:
    """A parser or argument group whose `add_argument` also keeps the action made:
    argparse itself lists its actions only privately."""

    def __init__(self, container, actions):
        self.container, self.actions = container, actions

    def add_argument(self, *args, **kwargs):
        action = self.container.add_argument(*args, **kwargs)
        self.actions.append(action)
        return action

    def add_argument_group(self, *args, **kwargs):
        return _Recording(self.container.add_argument_group(*args, **kwargs), self.actions)


def check_run(flags) -> None:
    """Refuses `keras-lottery run FLAGS` as `run` would before loading any data:
    the flags, what goes together, the preset's fields and the search's settings."""
    from keras_lottery import models
    from keras_lottery.data import datasets

    args = run_parser().parse_args(list(flags))
    args.command = "run"
    if not args.out:
        raise ValueError("Expected --out DIRECTORY. Received none")
    name, settings = search_request(args)
    for key in ("data_dir", "limit", "verbose"):
        settings.pop(key)
    preset, _ = presets.check_search(name, dict(settings))
    networks = {**models.NETWORKS, **models.LANGUAGE_MODELS}
    if preset.network not in networks:
        raise ValueError(f"Expected --network among {sorted(networks)}. Received: "
                         f"{preset.network!r}")
    if preset.dataset not in datasets.DATASETS:
        raise ValueError(f"Expected --dataset among {sorted(datasets.DATASETS)}. Received: "
                         f"{preset.dataset!r}")


def run_flags(flags) -> int:
    """Runs `keras-lottery run FLAGS` in this process, its backend already set;
    the library's errors (a `RunBusyError` among them) are raised as they are."""
    args = run_parser().parse_args(list(flags))
    args.command = "run"
    return _run(args, ["run", *flags])


def _run_arguments(parser) -> list:
    """The flags of `run`, also taken by `stability`; returns their actions."""
    run = _Recording(parser, [])
    run.add_argument("--out", help="run directory, required; rerun to resume")
    run.add_argument("--backend", choices=BACKENDS,
                     help="Keras backend (default: KERAS_BACKEND, else tensorflow)")
    what = run.add_argument_group("what to search: a preset, or a network and a data set")
    what.add_argument("--preset", help="a preset name (see --list-presets)")
    what.add_argument("--network", help="a keras_lottery.models name")
    what.add_argument("--dataset", help="a data set name (keras_lottery.datasets.load)")
    what.add_argument("--list-presets", action="store_true", help="print the presets and exit")
    how = run.add_argument_group("settings (override the preset's)")
    # Flags spelled as the settings, with their help: `search.settings.SETTINGS`
    # and `presets.TRAINING_SETTINGS`, declared there once.
    for setting in (*FLAGGED, *(s for s in TRAINING_SETTINGS if s.flag)):
        _add_flag(how, setting)
    # Spelled otherwise here: parts of a setting, or not settings of a search.
    how.add_argument("--rate", type=_fraction("[0, 1)"),
                     help="fraction of remaining weights pruned per round (prune_rates)")
    how.add_argument("--output-rate", type=_fraction("[0, 1)"), help="rate of the output layer")
    how.add_argument("--score-examples", type=_integer(1),
                     help="training examples snip and grasp score on (default 256)")
    how.add_argument("--synflow-iterations", type=_integer(1),
                     help="steps synflow prunes in to each density (default 100)")
    how.add_argument("--grasp-temperature", type=_positive, help="(default 200)")
    how.add_argument("--structure-score", choices=SCORES,
                     help="how units are scored: l1 (default), l2, bn_gamma")
    how.add_argument("--transfer-from", metavar="RUN_DIRECTORY",
                     help="instead of pruning, train the ticket masks found by the search in "
                          "RUN_DIRECTORY (on another data set), one round each")
    how.add_argument("--transfer-rounds", type=_integer(1), nargs="+", metavar="ROUND",
                     help="with --transfer-from: these of its rounds only (default: all)")
    how.add_argument("--jit-compile", choices=("fast", "true", "false", "auto"), default="fast",
                     help="compile setting: fast, the backend's fastest as measured (XLA on "
                          "TensorFlow, torch.compile on torch); or as model.compile takes it")
    how.add_argument("--limit", type=_integer(1), help="train on the first N examples only")
    how.add_argument("--data-dir", help="local copy of the data (else KERAS_LOTTERY_DATA, tfds)")
    how.add_argument("--seeds", type=_integer(0), nargs="+", metavar="SEED",
                     help="one search per seed, each in OUT/seed_<SEED>; processes of one "
                     "machine given the same seeds share them out (several machines: "
                     "keras-lottery sweep --engine ray or slurm)")
    how.add_argument("--data-parallel", action="store_true",
                     help="train on every device: keras.distribution.DataParallel on JAX, "
                     "tf.distribute.MirroredStrategy on TensorFlow")
    return run.actions


def _add_flag(group, setting):
    """`--name` for `setting`: parsed by its type, then refused by its own check."""
    flag = dict(setting.flag)
    kind = flag.pop("type", None)
    if kind is not None:
        parse = {int: _integer(None), float: _number, str: str}[kind]
        if "nargs" in flag:  # Each value checked as a list of one.
            flag["type"] = _checked(setting, lambda text: [parse(text)], element=True)
        else:
            flag["type"] = _checked(setting, parse)
    flag.setdefault("default", None)  # Not given: the preset's, else the search's default.
    group.add_argument("--" + setting.name.replace("_", "-"), dest=setting.name,
                       help=setting.help, **flag)


def _checked(setting, parse, element=False):
    def check(text):
        try:
            value = setting.checked(parse(text))
            return value[0] if element else value
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    check.__name__ = setting.name  # argparse names the type in its messages.
    return check


def _integer(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, received {text!r}") from None
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, received {value}")
        return value
    return parse


def _fraction(interval):
    def parse(text):
        value = _number(text)
        low_ok = value >= 0 if interval.startswith("[") else value > 0
        if not (low_ok and value < 1):
            raise argparse.ArgumentTypeError(f"expected a number in {interval}, received {text}")
        return value
    return parse


def _structure(text):
    try:
        as_structure(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _positive(text):
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, received {text}")
    return value


def _number(text):
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, received {text!r}")
    return value


def main(argv=None) -> int:
    """Runs a command; a refused input ends it with one message and exit status 1."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["sweep"]:  # Its other flags are run's, checked per member.
        args, flags = parser().parse_known_args(argv)
    else:
        args, flags = parser().parse_args(argv), []
    if args.command == "stability" and args.directory is not None:
        argv = _stability_argv(args, argv)
        args = parser().parse_args(argv)
    if (args.command in ("run", "stability", "export", "sparse", "sweep") and args.backend
            and _needs_backend_switch(args.backend)):
        # The backend is fixed when keras is first imported, and importing
        # this package imported it: start again with KERAS_BACKEND set.
        env = dict(os.environ, KERAS_BACKEND=args.backend)
        os.execve(sys.executable, [sys.executable, "-m", "keras_lottery.cli", *argv], env)
    try:
        if args.command == "sweep":
            return _sweep(args, flags)
        return {"run": _run, "stability": _run, "report": _report, "plot": _plot,
                "export": _export, "sparse": _sparse}[args.command](args, argv)
    except (ValueError, TypeError, FileNotFoundError, MemberFailed) as error:
        # The library's errors name the argument, what it expected and what
        # it received (a sweep's failed members, each named): that message, not a
        # traceback.
        raise SystemExit(f"keras-lottery {args.command}: {error}") from None


def _needs_backend_switch(backend):
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = backend
        return False
    import keras

    return keras.backend.backend() != backend


# The `run` command a run directory was made with, to measure it again.
COMMAND_FILE = "command.json"
# What `stability DIRECTORY` may change of that command: nothing that decides a number.
STABILITY_OPTIONS = ("--path-points", "--path-normalization", "--data-dir", "--verbose")


def _stability_argv(args, argv) -> list:
    """`stability DIRECTORY [options]` as the `stability` command with the run's own flags."""
    import json

    directory = pathlib.Path(args.directory)
    if not (directory / COMMAND_FILE).exists():
        raise SystemExit(
            f"keras-lottery stability: expected a run directory made by `keras-lottery run` "
            f"(with {COMMAND_FILE}). Received {str(directory)!r}, which has none: give the "
            "run's flags instead (--preset ... --out ...).")
    given = argv[argv.index(args.directory) + 1:] + argv[1:argv.index(args.directory)]
    refused = [a for a in given if a.startswith("--") and a.split("=")[0] not in
               STABILITY_OPTIONS]
    if refused:
        raise SystemExit(
            f"keras-lottery stability: expected only {', '.join(STABILITY_OPTIONS)} with a run "
            f"directory (the rest is the run's own). Received {refused}.")
    saved = json.loads((directory / COMMAND_FILE).read_text())["argv"]
    # The directory as given, not the path it was made at: it may have moved.
    saved = [a for i, a in enumerate(saved) if not (
        a == "--out" or a.startswith("--out=") or (i and saved[i - 1] == "--out"))]
    return ["stability", *saved, "--out", str(directory), "--instability", *given]


def _run(args, argv=()) -> int:
    if args.list_presets:
        for name, preset in presets.PRESETS.items():
            print(f"{name:30} {preset.network} on {preset.dataset}, {preset.optimizer} "
                  f"{preset.learning_rate}, batch {preset.batch_size}, "
                  f"{preset.iterations} iterations")
        return 0
    if not args.out:
        raise SystemExit(f"keras-lottery {args.command}: --out DIRECTORY is required")
    name, settings = search_request(args)
    out = pathlib.Path(args.out)
    if args.command == "stability":
        settings["instability"] = True
    # Kept once the search has accepted its settings (a refused command leaves
    # nothing behind) and before it trains (an interrupted run has one).
    keep = functools.partial(_keep_command, out, argv)
    if args.seeds is None:
        result = _search(name, args, settings, out, 0 if args.seed is None else args.seed,
                         keep)
        _keep_command(out, argv, again=True)
        print(result.summary())
        if result.instability or result.rewind_choice:
            print(result.stability_summary())
        return 0
    busy, seeds = [], list(args.seeds)
    shared = settings.get("data_order") == "shared"
    if settings.get("joint") and not shared and len(seeds) > 1:
        print("[keras-lottery] joint: the seeds run one after another (each draws its own data "
              "order); with --data-order shared their rounds train as one.", flush=True)
    if settings.get("joint") and shared and len(seeds) > 1:
        seeds = _free_seeds(out, seeds, busy)
        if len(seeds) > 1:
            try:
                _searches_together(name, args, settings, out, seeds, keep)
                seeds = []
            except RunBusyError as error:
                # Taken meanwhile by another process: one after another, skipping it.
                print(f"[keras-lottery] the seeds train one after another: {error}", flush=True)
    for seed in seeds:
        try:
            _search(name, args, settings, out / f"seed_{seed}", seed, keep)
        except RunBusyError as error:
            # Another process (or machine) is running this seed: go on to the next.
            print(f"[keras-lottery] seed {seed} skipped: {error}", flush=True)
            busy.append(seed)
    # These seeds' directories, those of other processes included (finished or
    # not); other seed_* folders in OUT are not this command's.
    on_file = [s for s in args.seeds if (out / f"seed_{s}" / "search.json").exists()]
    if not busy:
        _keep_command(out, argv, again=True)
    if on_file:
        results = {s: _load(out / f"seed_{s}") for s in on_file}
        aggregated = SearchResult.aggregate(list(results.values()))
        (out / "aggregate.csv").write_text(aggregated.to_csv())
        print(aggregated.summary())
        for seed, result in results.items():
            if result.instability or result.rewind_choice:
                print(f"seed {seed}:\n{result.stability_summary()}")
    if busy:
        print(f"[keras-lottery] seeds {busy} were running elsewhere; run `keras-lottery report "
              f"{out}` once they are done.")
    return 0


def search_request(args):
    """What `run`'s flags ask for: `(preset name, settings)` as `TicketSearch.from_preset`
    takes them. Flags that cannot go together are refused here, before any data loads."""
    flagged = (*FLAGGED, *(s for s in TRAINING_SETTINGS if s.flag))
    overrides = {s.name: getattr(args, s.name) for s in flagged
                 if getattr(args, s.name) is not None and s.name not in ("seed", "verbose")}
    overrides["jit_compile"] = {"fast": None, "true": True, "false": False, "auto": "auto"}[
        args.jit_compile]
    if overrides["jit_compile"] is None:
        del overrides["jit_compile"]
    name = args.preset
    if name is None:
        if not (args.network and args.dataset):
            raise SystemExit("keras-lottery run: give --preset, or --network and --dataset")
        name = _closest_preset(args.network, args.dataset)
        overrides.update(network=args.network, dataset=args.dataset)
    elif args.network or args.dataset:
        raise SystemExit("keras-lottery run: give --preset or --network/--dataset, not both")
    if args.rate is not None or args.output_rate is not None:
        base = presets.get(name).prune_rates
        by_kind = dict(base.by_kind)
        if args.rate is not None:
            by_kind = {k: v for k, v in by_kind.items() if k == "output" or v == 0}
        if args.output_rate is not None:
            by_kind["output"] = args.output_rate
        overrides["prune_rates"] = PruneRates(
            base.default if args.rate is None else args.rate, by_kind=by_kind)
    options = {"examples": args.score_examples, "iterations": args.synflow_iterations,
               "temperature": args.grasp_temperature}
    if any(v is not None for v in options.values()):
        overrides["criterion"] = Criterion(
            args.criterion or "large_final", **{k: v for k, v in options.items() if v is not None})
    if args.structure_score is not None:
        if args.structure is None or args.structure.kind == "unstructured":
            raise SystemExit("keras-lottery run: --structure-score needs --structure (units "
                             "or blocks to score)")
        overrides["structure"] = as_structure(args.structure, args.structure_score)
    if args.transfer_from is not None:
        overrides["transfer"] = _transferred(args)
    elif args.transfer_rounds:
        raise SystemExit("keras-lottery run: --transfer-rounds needs --transfer-from")
    if args.seeds is not None and args.seed is not None:
        raise SystemExit("keras-lottery run: give --seed or --seeds, not both")
    if args.seeds is not None and len(set(args.seeds)) != len(args.seeds):
        raise SystemExit(f"keras-lottery run: --seeds repeats a seed: {args.seeds}")
    settings = dict(data_dir=args.data_dir, limit=args.limit, verbose=args.verbose,
                    **overrides)
    return name, settings


def _keep_command(out, argv, again=False):
    """Writes the command's flags to OUT, for `keras-lottery stability OUT`: when
    the run starts if none is there (so an interrupted run has one), and again
    (`again`) once it has finished, so the last command that ran is the one kept."""
    import json

    out.mkdir(parents=True, exist_ok=True)
    if argv and (again or not (out / COMMAND_FILE).exists()):
        flags = [a for a in argv[1:] if a != "--instability"]
        (out / COMMAND_FILE).write_text(json.dumps({"argv": flags}, indent=1))


def _sparse(args, argv=()) -> int:
    """One training of a preset's network that ends at `--density`, resumable: Keras'
    `BackupAndRestore` keeps the model, its masks and the step in OUT/backup."""
    import json

    import keras

    from keras_lottery.masking.conversion import strip
    from keras_lottery.masking.sparsity import compressed_size, sparsity_report
    from keras_lottery.sparse import dynamic, gradual, schedules

    args.end = args.end or (0.6 if args.method == "gradual" else 0.75)
    if args.end <= args.begin and args.method == "gradual":
        raise SystemExit(f"keras-lottery sparse: --end ({args.end}) must come after --begin "
                         f"({args.begin})")
    overrides = {name: getattr(args, name) for name in ("iterations", "batch_size",
                                                        "learning_rate")
                 if getattr(args, name) is not None}
    preset = presets.get(args.preset, **overrides)
    model, splits, (x, y) = presets.build_training(preset, data_dir=args.data_dir,
                                                   limit=args.limit, seed=args.seed)
    epochs = preset.epochs(len(x))
    steps = epochs * math.ceil(len(x) / preset.batch_size)
    budget = args.budget or ("uniform" if args.method == "gradual" else "erk")
    if args.method == "gradual":
        begin = int(args.begin * steps) // args.every * args.every
        end = max(begin, int(args.end * steps) // args.every * args.every)
        callback = gradual.GradualPruning(schedules.PolynomialDecay(
            0.0, 1 - args.density, begin, end, frequency=args.every), budget=budget)
    else:
        if budget == "global":
            raise SystemExit("keras-lottery sparse: expected --budget erk or uniform for "
                             f"{args.method}. Received: --budget {budget}")
        end = int(args.end * steps)
        common = dict(budget=budget, update_every=args.every, end_step=max(1, end),
                      seed=args.seed)
        callback = (dynamic.SET(args.density, **common) if args.method == "set" else
                    dynamic.RigL(args.density, (x, y), batch_size=preset.batch_size, **common))
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dense = {f"dense_{k}": v for k, v in compressed_size(model).items()}  # For comparison.
    keras.utils.set_random_seed(args.seed + 1)  # The data order.
    model.fit(x, y, batch_size=preset.batch_size, epochs=epochs, verbose=args.verbose,
              validation_data=splits.validation if len(splits.validation[1]) else None,
              callbacks=[callback, keras.callbacks.BackupAndRestore(str(out / "backup"))])
    test = model.evaluate(*splits.test, batch_size=1000, verbose=0, return_dict=True)
    plain = strip(model)
    plain.save(out / "model.keras")
    result = {"preset": args.preset, "method": args.method, "budget": budget,
              "density": sparsity_report(model).density, "steps": steps, "seed": args.seed,
              **{f"test_{k}": float(v) for k, v in test.items()}, **compressed_size(plain),
              **dense}
    (out / "result.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


def _transferred(args):
    """The mask sets of --transfer-from, read before any data loads. What may
    not go with them is the search's own rule (`search.settings`)."""
    if args.transfer_rounds and len(set(args.transfer_rounds)) != len(args.transfer_rounds):
        raise SystemExit(f"keras-lottery run: --transfer-rounds repeats a round: "
                         f"{args.transfer_rounds}")
    from keras_lottery.search.run_directory import load_masks

    try:
        found = load_masks(args.transfer_from, rounds=args.transfer_rounds)
    except ValueError as error:
        raise SystemExit(f"keras-lottery run: --transfer-from {args.transfer_from}: "
                         f"{error}") from None
    found.pop(0, None)  # Round 0's masks are the dense network's.
    if not found:
        raise SystemExit(f"keras-lottery run: --transfer-from {args.transfer_from} has no "
                         "pruned ticket round yet.")
    return list(found.values())


def _search(name, args, settings, directory, seed, accepted=lambda: None):
    """Runs (or resumes) one search in `directory` and writes its result.csv;
    `accepted` is called once the settings are checked, before any training."""
    from keras_lottery.runtime.distribution import data_parallel
    from keras_lottery.search.ticket_search import TicketSearch

    with data_parallel() if args.data_parallel else contextlib.nullcontext():
        search = TicketSearch.from_preset(name, directory=directory, seed=seed, **settings)
        search._when_accepted = accepted
        result = search.run()
    (directory / "result.csv").write_text(result.to_csv())
    return result


def _free_seeds(out, seeds, busy) -> list:
    """`seeds` but those another process (or machine) runs now, which go to
    `busy`, said as the loop over seeds says it."""
    from keras_lottery.search.run_directory import RunDirectory

    free = []
    for seed in seeds:
        try:
            with RunDirectory(out / f"seed_{seed}").claimed():
                free.append(seed)
        except RunBusyError as error:
            print(f"[keras-lottery] seed {seed} skipped: {error}", flush=True)
            busy.append(seed)
    return free


def _searches_together(name, args, settings, out, seeds, accepted):
    """Runs (or resumes) `seeds`' searches round by round, their rounds
    trained as one program (`run_together`), and writes each one's result.csv."""
    from keras_lottery.runtime.distribution import data_parallel
    from keras_lottery.search.ticket_search import TicketSearch
    from keras_lottery.search.together import run_together

    with data_parallel() if args.data_parallel else contextlib.nullcontext():
        searches = [TicketSearch.from_preset(name, directory=out / f"seed_{seed}", seed=seed,
                                             **settings) for seed in seeds]
        for search in searches:
            search._when_accepted = accepted
        results = run_together(searches)
    for seed, result in zip(seeds, results):
        (out / f"seed_{seed}" / "result.csv").write_text(result.to_csv())


def _closest_preset(network, dataset):
    """The preset whose hyperparameters a network/data-set pair starts from."""
    from keras_lottery import presets

    for name, preset in presets.PRESETS.items():
        if preset.network == network and preset.dataset == dataset:
            return name
    for name, preset in presets.PRESETS.items():
        if preset.network == network:
            return name
    raise SystemExit(
        f"keras-lottery run: no preset for network {network!r}; known networks: "
        f"{sorted({p.network for p in presets.PRESETS.values()})}")


def _sweep(args, flags) -> int:
    """Every combination of the --over values, each member a `run` with the other flags."""
    from keras_lottery.sweeps import engines
    from keras_lottery.sweeps.sweep import Sweep

    actions = {a.dest: a for a in run_parser().run_flags}
    over = {}
    for name, *values in args.over:
        if not values:
            raise ValueError(f"Expected --over SETTING VALUE [VALUE ...]. Received: --over "
                             f"{name} with no value")
        if name in over:
            raise ValueError(f"Expected each --over SETTING once. Received --over {name} "
                             "twice: give all its values after one")
        action = actions.get(name.lstrip("-").replace("-", "_"))
        if action is not None and action.nargs in ("+", "*"):
            values = [v.split() for v in values]
        elif action is not None and action.nargs == 0:  # A flag without a value.
            values = [_flag_given(name, v) for v in values]
        over[name] = values
    options = {"ray": {"address": args.address, "cpus": args.cpus, "gpus": args.gpus,
                       "retries": args.retries},
               "slurm": {"partition": args.partition, "gpus": args.gpus,
                         # Whole CPUs, as Slurm counts them; 1.5 is refused by Slurm().
                         "cpus": _whole(args.cpus),
                         "timeout_min": args.timeout_min, "parallel": args.parallel,
                         "setup": args.setup, "cluster": args.submitit_cluster},
               "local": {}}[args.engine]
    unused = [f"--{k.replace('_', '-')}" for k in ("address", "retries", "partition",
                                                  "timeout_min", "parallel", "setup", "cpus",
                                                  "gpus")
              if getattr(args, k) is not None and k not in options]
    if args.submitit_cluster != "slurm" and args.engine != "slurm":
        unused.append("--submitit-cluster")
    if unused:
        raise ValueError(f"Expected {', '.join(unused)} with an engine that takes them. "
                         f"Received them with --engine {args.engine}")
    engine = engines.named(args.engine, **{k: v for k, v in options.items() if v is not None})
    sweep = Sweep(args.out, over, flags=[*flags, "--verbose", str(args.verbose)])
    results = sweep.run(engine)
    if results:
        print(f"# {len(results)} of {len(sweep.members)} members on file")
        for label, result in _grouped([args.out]).items():
            print(f"# {label}")
            print(result.summary())
    return 0


def _flag_given(name, text):
    """--over's value of a flag without a value: whether the flag is given."""
    words = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
    if text.lower() not in words:
        raise ValueError(f"Expected --over {name} values true or false. Received: {text!r}")
    return words[text.lower()]


def _whole(number):
    return number if number is None or number % 1 else int(number)


def _load(directory):
    from keras_lottery.search.run_directory import load_result

    try:
        return load_result(directory)
    except ValueError as error:
        raise SystemExit(f"keras-lottery: {error}") from None


def _expand(directories):
    """Run directories: each given one, the seed_* run directories inside a folder,
    or a sweep's members."""
    found = []
    from keras_lottery.sweeps.sweep import SWEEP_FILE, member_directories

    for directory in map(pathlib.Path, directories):
        if (directory / SWEEP_FILE).exists():  # A sweep's folder: its members on file.
            found.extend(member_directories(directory))
            continue
        seeds = sorted((d for d in directory.glob("seed_*") if (d / "search.json").exists()),
                       key=lambda d: (len(d.name), d.name))
        found.extend(seeds if seeds and not (directory / "search.json").exists()
                     else [directory])
    return found


def _grouped(directories) -> dict:
    """`{label: SearchResult, or AggregateResult of runs differing only in their seed}`.

    Runs that share their settings but also a seed (the same search run twice,
    say on one device and on several) are not averaged: each stays on its own.
    """
    from keras_lottery.search.aggregate import same_search_key

    groups = {}
    for directory in _expand(directories):
        result = _load(directory)
        groups.setdefault(same_search_key(result.config), []).append((directory, result))
    if not groups:
        raise ValueError(f"Expected runs on file in {list(map(str, directories))}. Received "
                         "none: no member of the sweep there has started yet")
    labelled = {}
    for members in groups.values():
        seeds = [r.config.get("seed") for _, r in members]
        if len(members) > 1 and len(set(seeds)) == len(seeds):
            parents = {d.parent for d, _ in members}
            label = (str(next(iter(parents))) if len(parents) == 1
                     else f"{members[0][0]} (+{len(members) - 1} seeds)")
            labelled[_unique(label, labelled)] = SearchResult.aggregate(
                [r for _, r in members])
        else:
            for directory, result in members:
                labelled[_unique(str(directory), labelled)] = result
    return labelled


def _unique(label, taken):
    number, unique = 2, label
    while unique in taken:
        unique, number = f"{label} ({number})", number + 1
    return unique


def _report(args, argv=()) -> int:
    groups = _grouped(args.directories)
    if args.csv:
        print(_joined_csv(groups) if len(groups) > 1 else next(iter(groups.values())).to_csv(),
              end="")
        return 0
    for label, result in groups.items():
        if len(groups) > 1:
            print(f"# {label}")
        print(result.summary())
    return 0


def _joined_csv(groups) -> str:
    """One CSV of several runs' tables, a `run` column first."""
    rows = []
    for label, result in groups.items():
        rows += [{"run": label, **row} for row in csv.DictReader(io.StringIO(result.to_csv()))]
    return csv_text(rows)


def _plot(args, argv=()) -> int:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SystemExit("keras-lottery plot needs matplotlib: pip install 'keras-lottery[plot]'")
    from keras_lottery import plots

    results = _grouped(args.directories)
    for path in plots.save_figures(results if len(results) > 1 else next(iter(results.values())),
                                   args.out):
        print(path)
    return 0


def _export(args, argv=()) -> int:
    import importlib

    import keras
    import numpy as np

    from keras_lottery.masking.conversion import strip
    from keras_lottery.search.export import export_ticket

    for module in args.imports:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise SystemExit(f"keras-lottery export: --import {module}: {error}") from None
    model = export_ticket(args.directory, args.out, args.round, args.form)
    result = _load(args.directory)
    record = result.record(args.round) if args.round is not None else result.tickets()[-1]
    plain = strip(model) if args.form == "masked" else model  # Counted without the masks.
    nonzero = sum(int(np.count_nonzero(keras.ops.convert_to_numpy(w))) for w in plain.weights)
    print(f"{args.out}: round {record.round}'s ticket ({record.density:.1%} of prunable "
          f"weights) as {args.form}: {plain.count_params():,} parameters, {nonzero:,} of them "
          "nonzero")
    return 0


if __name__ == "__main__":
    sys.exit(main())
