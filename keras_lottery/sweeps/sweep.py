"""A sweep as data: one search's settings, with lists of values to sweep over.

Every member is one `keras-lottery run`: the sweep's settings plus one value
of each swept setting, in a run directory of its own under the sweep's
folder, named by those values:

    OUT/criterion=snip,rate=0.5/seed_0      (seeds swept: grouped by the rest)
    OUT/criterion=snip,rate=0.5             (seeds not swept)
    OUT/seed_0                              (only seeds swept: as `run --seeds`)

so that `keras-lottery report OUT` and `plot OUT` average the seeds of each
setting and put the settings side by side. Settings are named as `run`'s
flags (`one_shot` or `one-shot` for `--one-shot`); a member is refused before
any member runs if the search would refuse it, naming the member. Which
machine runs a member is the engine's business (`sweeps.engines`); the
member itself is the same `run` everywhere, resumable from its directory.
"""

import dataclasses
import json
import os
import pathlib
import re
import uuid

SWEEP_FILE = "sweep.json"
# Shared settings a rerun of a sweep may change: they decide no number.
NO_NUMBER = ("verbose", "data_dir", "joint")
# Of those, the flags that take no value.
SWITCHES = ("joint",)
# `run` flags a sweep sets itself, and what to use instead.
NOT_SWEEP_SETTINGS = {
    "out": "the sweep's directory", "seeds": "over={'seed': [...]}",
    "backend": "the sweep's own backend (KERAS_BACKEND, or `keras-lottery sweep --backend`)",
    "list_presets": "`keras-lottery run --list-presets`", "help": None,
}


@dataclasses.dataclass(frozen=True)
class Member:
    """One search of a sweep.

    Attributes:
        name: its swept values, `"criterion=snip,seed=0"`.
        directory: its run directory (absolute).
        argv: its `keras-lottery run` flags, `--out directory` included.
    """

    name: str
    directory: pathlib.Path
    argv: tuple


class Sweep:
    """One search's settings with lists of values to sweep over.

    Args:
        directory: the sweep's folder; each member's run directory lies in it.
        over: `{setting: [values]}`, the settings to sweep, each a `run` flag
            (`"seed"`, `"criterion"`, `"one_shot"`, `"rewind_step"`,
            `"network"`, ...); every combination is a member, in the order
            given (the last setting varies fastest). A value of a flag that
            takes several (`one_shot`) is a list.
        flags: `run`'s command-line flags every member shares, as text
            (`["--preset", "lenet_300_100_mnist", "--rounds", "3"]`).
        **settings: the settings every member shares, as `run` flags:
            `preset="lenet_300_100_mnist"`, `rounds=3`, `limit=1000`,
            `instability=True` (a flag without a value).

    Example:

    >>> sweep = kl.Sweep("runs/criteria", over={"criterion": ["snip", "synflow"],
    ...                  "seed": [0, 1, 2]}, preset="lenet_300_100_mnist",
    ...                  one_shot=[0.2, 0.05])
    >>> results = sweep.run()                       # one after another, here
    >>> results = sweep.run(kl.sweeps.Ray())        # or on a Ray cluster
    """

    def __init__(self, directory, over, *, flags=(), **settings):
        from keras_lottery import cli

        self.directory = pathlib.Path(directory).absolute()
        if not isinstance(over, dict) or not over:
            raise ValueError(f"Expected `over` a dict of settings to lists of values, at least "
                             f"one. Received: over={over!r}")
        parser = cli.run_parser()
        actions = _run_flags()
        self.over, self.settings = {}, {}
        for name, values in over.items():
            key = _setting_name("over", name, actions)
            if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
                raise ValueError(f"Expected `over[{name!r}]` a list of values. Received: "
                                 f"{values!r}")
            values = list(values)
            if not values:
                raise ValueError(f"Expected `over[{name!r}]` at least one value. Received: []")
            # Repeats by the value `run` reads (`1` and `"01"` are one seed).
            read = [_read(parser, actions[key], name, v) for v in values]
            repeated = sorted({str(v) for v, r in zip(values, read) if read.count(r) > 1})
            if repeated:
                raise ValueError(f"Expected `over[{name!r}]` without repeats. Received: "
                                 f"{values!r}, which repeats {', '.join(repeated)}")
            if key in self.over:
                raise ValueError(f"Expected each setting once in `over`. Received {name!r} "
                                 "twice (spelled two ways)")
            self.over[key] = values
        for name, value in settings.items():
            key = _setting_name("settings", name, actions)
            if key in self.over:
                raise ValueError(f"Expected `{key}` either swept (`over`) or shared, not both. "
                                 f"Received: over[{key!r}]={self.over[key]!r}, {key}={value!r}")
            self.settings[key] = value
        if isinstance(flags, (str, bytes)):
            raise ValueError(f"Expected `flags` a list of command-line words. Received: "
                             f"flags={flags!r}")
        self.flags = [str(f) for f in flags]
        given = vars(parser.parse_args(self.flags))
        defaults = {action.dest: action.default for action in parser.run_flags}
        for key in sorted(set(self.over) | set(self.settings) | set(NOT_SWEEP_SETTINGS)):
            if key in given and given[key] != defaults[key]:
                raise ValueError(f"Expected `flags` without --{key.replace('_', '-')}: it is "
                                 f"{'swept' if key in self.over else 'set'} by the sweep. "
                                 f"Received: flags={self.flags}")
        self.members = self._members(actions)

    def _members(self, actions):
        shared = [*self.flags, *(t for key, value in self.settings.items()
                                 for t in _tokens(actions[key], value))]
        combos = [{}]
        for key, values in self.over.items():
            combos = [{**c, key: v} for c in combos for v in values]
        members = []
        for combo in combos:
            swept = [t for key, value in combo.items() for t in _tokens(actions[key], value)]
            named = ",".join(f"{key}={_label(value)}" for key, value in combo.items()
                             if key != "seed")
            parts = [p for p in (named, f"seed_{_label(combo['seed'])}" if "seed" in combo else "") if p]
            directory = self.directory.joinpath(*parts)
            name = ",".join(f"{key}={_label(value)}" for key, value in combo.items())
            members.append(Member(name, directory,
                                  (*shared, *swept, "--out", str(directory))))
        clashes = len({m.directory for m in members}) < len(members)
        if clashes:
            raise ValueError(
                "Expected values that name distinct member directories. Received values that "
                f"differ only in characters a folder name cannot hold: {self.over!r}")
        return members

    def check(self):
        """Refuses, naming the first member, a member the search would refuse;
        nothing is loaded or trained."""
        from keras_lottery import cli

        for member in self.members:
            try:
                cli.check_run(list(member.argv))
            except (ValueError, TypeError, SystemExit) as error:
                message = str(error).removeprefix("keras-lottery run: ")
                raise ValueError(f"Expected every member of the sweep accepted by the search. "
                                 f"Received member {member.name!r}: {message}") from None

    def run(self, engine=None, *, verbose=True) -> dict:
        """Runs (or resumes) every member on `engine` (default: `Local()`, one after
        another in this process); returns `{member name: SearchResult}` of the
        members whose directories hold a result, finished or not.

        Every member is checked first; then `SWEEP_FILE` records the sweep in
        its directory, adding these members to those of earlier runs with the
        same shared settings (more seeds, say); other shared settings in the
        same directory are refused, before anything runs. One process at a
        time runs a sweep (its folder's `running.lock`). A member another
        process is running is skipped and said.
        """
        import keras

        from keras_lottery.search.run_directory import load_result
        from keras_lottery.search.run_lock import held
        from keras_lottery.sweeps.engines import Local

        engine = Local() if engine is None else engine
        engine.check()
        self.check()
        earlier = self._earlier()
        backend = keras.backend.backend()
        with held(self.directory):
            # One owner for every attempt of this sweep's members, kept across runs of
            # the sweep: a rerun after this process died takes over its members' locks.
            owner = earlier.get("owner") or f"{engine.name}-{uuid.uuid4().hex[:12]}"
            self._write(engine, backend, owner, earlier)
            engine.run(self.members, backend, self.directory, owner, verbose=verbose)
        return {m.name: load_result(m.directory) for m in self.members
                if (m.directory / "search.json").exists()}

    def _shared(self):
        """The shared settings that decide the members' numbers: a rerun may print
        more or less, or read the data from another folder."""
        settings = {k: v for k, v in self.settings.items() if k not in NO_NUMBER}
        return {"flags": _without(self.flags, NO_NUMBER),
                "settings": json.loads(json.dumps(settings, default=str)),
                "swept": list(self.over)}

    def _earlier(self) -> dict:
        """`SWEEP_FILE` of an earlier run in this directory ({} if none), refused if its
        shared settings differ: its members' directories would be these ones'."""
        path = self.directory / SWEEP_FILE
        if not path.exists():
            return {}
        earlier = json.loads(path.read_text())
        for key, value in self._shared().items():
            if earlier.get(key) != value:
                raise ValueError(
                    f"Expected the shared settings of the sweep already in {str(path)!r}, "
                    f"or another directory. Received other `{key}`: {value!r}, where the "
                    f"sweep on file has {earlier.get(key)!r}")
        return earlier

    def _write(self, engine, backend, owner, earlier):
        members = {m["directory"]: m for m in earlier.get("members", [])}
        for m in self.members:
            directory = _relative(m.directory, self.directory)
            members[directory] = {"name": m.name, "directory": directory, "argv": list(m.argv)}
        described = {**self._shared(), "over": self.over, "backend": backend,
                     "engine": engine.name, "owner": owner, "members": list(members.values())}
        path = self.directory / SWEEP_FILE
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(described, indent=1, default=str))
        temporary.replace(path)


def _without(flags, names):
    """`flags` without the flags `names` and their values (one, or none for `SWITCHES`)."""
    spelled = {"--" + name.replace("_", "-") for name in names}
    switches = {"--" + name.replace("_", "-") for name in SWITCHES}
    kept, skip = [], False
    for word in flags:
        if skip:
            skip = False
        elif word in switches:
            continue
        elif word in spelled:
            skip = True
        elif not any(word.startswith(flag + "=") for flag in spelled):
            kept.append(word)
    return kept


def member_directories(folder) -> list:
    """The run directories of the sweep in `folder` (its `SWEEP_FILE`), those on file."""
    folder = pathlib.Path(folder)
    described = json.loads((folder / SWEEP_FILE).read_text())
    found = [folder / m["directory"] for m in described["members"]]
    return [d for d in found if (d / "search.json").exists()]


def _run_flags() -> dict:
    """`{setting name: argparse action}` of `keras-lottery run`."""
    from keras_lottery import cli

    run = cli.run_parser()
    return {action.dest: action for action in run.run_flags
            if action.option_strings and action.dest not in NOT_SWEEP_SETTINGS}


def _setting_name(argument, name, flags):
    key = str(name).lstrip("-").replace("-", "_")
    if key in NOT_SWEEP_SETTINGS and NOT_SWEEP_SETTINGS[key]:
        raise ValueError(f"Expected `{argument}` without `{key}`: use "
                         f"{NOT_SWEEP_SETTINGS[key]}. Received: {name!r}")
    if key not in flags:
        raise ValueError(f"Expected `{argument}` settings among `keras-lottery run`'s flags "
                         f"{sorted(flags)}. Received: {name!r}")
    return key


def _tokens(action, value) -> list:
    """`value` as `run`'s command line spells it."""
    flag = action.option_strings[0]
    if action.nargs == 0:  # A flag without a value (`--instability`).
        if not isinstance(value, bool):
            raise ValueError(f"Expected `{action.dest}` True or False (a flag). Received: "
                             f"{value!r}")
        return [flag] if value else []
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        if action.nargs not in ("+", "*"):
            raise ValueError(f"Expected `{action.dest}` one value. Received: {value!r}")
        return [flag, *map(_text, value)]
    return [flag, _text(value)]


def _read(parser, action, name, value):
    """`value` as `run` reads it from its command line."""
    try:
        return getattr(parser.parse_args(_tokens(action, value)), action.dest)
    except ValueError as error:
        raise ValueError(f"Expected `over[{name!r}]` values that `keras-lottery run` takes. "
                         f"Received: {value!r} ({error})") from None


def _text(value) -> str:
    return str(value.absolute()) if isinstance(value, pathlib.Path) else str(value)


def _label(value) -> str:
    """A value as part of a folder name."""
    text = "+".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    return re.sub(r"[^A-Za-z0-9._+-]", "_", text)


def _relative(path, folder):
    return str(pathlib.Path(path).relative_to(folder))
