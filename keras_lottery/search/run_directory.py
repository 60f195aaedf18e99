"""Where a search keeps what it has done: on disk (resumable) or in memory.

Every file is written to a temporary name and renamed into place, so a file
either exists whole or not at all; a round's record is written after its
masks and trained state and marks it finished; `result.json` is rewritten
from the records whenever a search opens the directory, so it is never
stale for long, and `load_result` reads the records themselves.

Layout:
    search.json                 the fingerprint a resume must match (keras_lottery.search.resume)
    model.json                  the model's Keras config, to rebuild tickets (keras_lottery.search.export)
    theta0.npz, rewind.npz      initial state and rewind state (if not θ0)
    rounds/003_ticket.json      one record per trained network
    rounds/003_ticket_masks.npz its masks (also for random pruning)
    trained/003.npz             trained state of a ticket round, to prune from
    trained/003_inverted.npz    the same of the inverted control (iterative)
    stability/003_ticket.json   the instability of round 3's ticket (instability=True)
    stability/rewind_000100.npz the dense run's state at rewind candidate 100
    stability/rewind_000100_dense.json   that candidate's instability
    stability/rewind_choice.json         the rewind step chosen among the candidates
    stability/..._copy1.npz     a copy trained for a measurement not yet finished
    result.json                 all records so far (SearchResult)
    running.lock                while a search runs here: its host and process id
"""

import contextlib
import dataclasses
import json
import os
import pathlib
import tempfile
import zipfile

import numpy as np

from keras_lottery import checks
from keras_lottery.search import resume, run_lock
from keras_lottery.search.results import (
    RECORD_KINDS,
    InstabilityRecord,
    RoundRecord,
    SearchResult,
    choice_to_json,
)

REWIND_CHOICE = "stability/rewind_choice.json"


class DamagedRunError(ValueError):
    """A file of a run directory that cannot be read: named, with the way out."""

    def __init__(self, root, name, error):
        self.path = pathlib.Path(root) / name
        state = "missing" if isinstance(error, FileNotFoundError) else "damaged"
        super().__init__(
            f"Expected a readable run directory. Received a {state} file {str(self.path)!r} "
            f"({type(error).__name__}: {error}). {_way_out(name)}"
        )


def _way_out(name: str) -> str:
    """What a user can do about damaged file `name`: what is lost, what is not."""
    if name.startswith("rounds/") and name.endswith(".json"):
        stem = name[len("rounds/"):-len(".json")]
        return (f"The other trainings are intact: delete rounds/{stem}.json and run again to "
                "train that one again with the masks on file.")
    if name.startswith("rounds/"):
        stem = name[len("rounds/"):-len("_masks.npz")]
        round_, kind = int(stem[:3]), stem[4:]
        if kind not in ("ticket", "inverted") or round_ == 0:
            return (f"The other trainings are intact: delete rounds/{stem}_masks.npz and "
                    f"rounds/{stem}.json and run again to train that one again.")
        source = trained_name(round_ - 1, kind if round_ > 1 else "ticket")
        return (f"The other trainings are intact. Delete rounds/{stem}_masks.npz and "
                f"rounds/{stem}.json and run again to prune and train it again; if the weights "
                f"it is pruned from ({source}) are gone, delete the record of the training that "
                f"wrote them too (rounds/{round_ - 1:03d}_{kind if round_ > 1 else 'ticket'}"
                ".json), which is then retrained with the masks on file.")
    if name.startswith("trained/"):
        stem = name[len("trained/"):-len(".npz")]  # 003 or 003_inverted, see trained_name
        record = stem if "_" in stem else f"{stem}_ticket"
        return ("It holds the trained weights the next round prunes from: delete the record "
                f"of the training that wrote it (rounds/{record}.json) and run again to train "
                "it again; the trainings before it are intact.")
    if name.startswith("stability/"):
        return (f"It is a measurement of instability: delete {name} and run again to "
                "measure it again; nothing else is lost.")
    if name == "result.json":
        return "It is rewritten from the round records: run the search again, or load_result()."
    if name == "model.json":
        return ("It is the model's Keras config, which keras_lottery.load_ticket reads: run the "
                "search again to write it again (nothing finished is retrained).")
    return ("It is the start of the search (θ0, the rewind point, or the fingerprint of its "
            "settings), which cannot be recovered from the rest: start a new directory. The "
            "round records in rounds/ are intact JSON files.")


class RunDirectory:
    """Files of a search on disk, each written whole or not at all."""

    def __init__(self, path):
        # Path("") is the working directory, which no one means by an empty path.
        self.path = pathlib.Path(checks.path("directory", path))
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(
                f"Expected `directory` to be a folder (new or of an earlier search). "
                f"Received {str(self.path)!r}, which is a file."
            )

    def exists(self, name: str) -> bool:
        return (self.path / name).exists()

    def write_json(self, name: str, data) -> None:
        self._write(name, lambda f: f.write(json.dumps(data, indent=1, default=repr).encode()))

    def read_json(self, name: str):
        try:
            data = json.loads((self.path / name).read_text())
            if not isinstance(data, dict):
                raise ValueError(f"a JSON {type(data).__name__}, not an object")
            return data
        except (OSError, UnicodeDecodeError, ValueError) as error:
            raise DamagedRunError(self.path, name, error) from None

    def write_arrays(self, name: str, arrays: dict) -> None:
        # Paths contain "/", so keys go in a list and arrays by position.
        keys = list(arrays)
        payload = {f"a{i}": np.asarray(arrays[k]) for i, k in enumerate(keys)}
        self._write(name, lambda f: np.savez(f, __keys__=np.array(keys), **payload))

    def read_arrays(self, name: str) -> dict:
        try:
            with np.load(self.path / name) as data:
                return {str(k): data[f"a{i}"] for i, k in enumerate(data["__keys__"])}
        except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as error:
            raise DamagedRunError(self.path, name, error) from None

    def list(self, folder: str, suffix: str) -> list:
        directory = self.path / folder
        return sorted(p.name for p in directory.glob(f"*{suffix}")) if directory.exists() else []

    def remove(self, name: str) -> None:
        (self.path / name).unlink(missing_ok=True)

    def claimed(self):
        """Holds `running.lock` while a search writes here (see `run_lock`)."""
        return run_lock.held(self.path)

    def _write(self, name, write):
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            pathlib.Path(tmp).unlink(missing_ok=True)
            raise


class MemoryDirectory:
    """The same files, kept in memory: a search without a directory resumes
    from here when `run()` is called again."""

    def __init__(self):
        self.path = "memory"
        self.files = {}

    def exists(self, name: str) -> bool:
        return name in self.files

    def write_json(self, name: str, data) -> None:
        self.files[name] = json.loads(json.dumps(data, default=repr))

    def read_json(self, name: str):
        return self.files[name]

    def write_arrays(self, name: str, arrays: dict) -> None:
        self.files[name] = {k: np.array(v) for k, v in arrays.items()}

    def read_arrays(self, name: str) -> dict:
        return dict(self.files[name])

    def list(self, folder: str, suffix: str) -> list:
        prefix = folder.rstrip("/") + "/"
        return sorted(name[len(prefix):] for name in self.files
                      if name.startswith(prefix) and name.endswith(suffix))

    def remove(self, name: str) -> None:
        self.files.pop(name, None)

    def claimed(self):
        return contextlib.nullcontext()


class SearchStore:
    """A search's records, masks and states in a `RunDirectory` or `MemoryDirectory`.

    `open` starts a new search there or resumes the one found, after
    checking its fingerprint; arrays saved under other layer paths (a model
    rebuilt with Keras' automatic names) are read under the current ones.
    """

    def __init__(self, directory):
        self.directory = directory
        self._rename = {}
        self._cache = {}

    def open(self, fingerprint: dict, theta0: dict, read_only: bool = False) -> list:
        """Starts or resumes; returns the records already on file.

        `read_only` neither starts a search nor compares the data sets.
        """
        if not self.directory.exists("search.json"):
            if read_only:
                raise ValueError(
                    f"Expected a search to read from. Received {self.directory.path}, where "
                    "none has run yet: call `run()` first."
                )
            # θ0 first: search.json marks a complete start.
            self.directory.write_arrays("theta0.npz", theta0)
            self.directory.write_json("search.json", fingerprint)
            self._rename = {}
            return []
        saved = self.directory.read_json("search.json")
        # Reopened for its tickets only, a search need not have the data (or its vocabulary).
        found = [d for d in resume.differences(saved, fingerprint)
                 if not (read_only and (d.startswith("data.") or d == "vocabulary"))]
        if found:
            why = resume.explain(found, saved, fingerprint)
            raise ValueError(
                f"Expected the search saved in {self.directory.path} to resume. Received "
                f"another one (differs in {found}{': ' + why if why else ''}). Use a new "
                "directory (or a new TicketSearch), or the same settings, model and data."
            )
        stops = {k: fingerprint["config"].get(k) for k in resume.WHERE_IT_STOPS}
        if not read_only and any(saved.get("config", {}).get(k) != v for k, v in stops.items()):
            # Extended (or cut short): the fingerprint says where it stops now.
            self.directory.write_json("search.json", {
                **saved, "config": {**saved.get("config", {}), **stops}})
        self._rename = resume.path_translation(saved, fingerprint)
        records = [self._translated_record(read_record(self.directory, n))
                   for n in self.directory.list("rounds", ".json")]
        records.sort(key=lambda r: (r.round, RECORD_KINDS.index(r.kind)))
        return records

    def read(self, name: str) -> dict:
        """Arrays saved as `name`, keyed by the current model's paths."""
        if name not in self._cache:
            arrays = self.directory.read_arrays(name)
            self._cache[name] = {self._rename.get(k, k): v for k, v in arrays.items()}
        return self._cache[name]

    def write(self, name: str, arrays: dict) -> None:
        back = {new: old for old, new in self._rename.items()}
        self.directory.write_arrays(name, {back.get(k, k): v for k, v in arrays.items()})
        self._cache[name] = dict(arrays)

    def exists(self, name: str) -> bool:
        return name in self._cache or self.directory.exists(name)

    def has(self, round_: int, kind: str) -> bool:
        """Whether a training is finished: its record is on file."""
        return self.directory.exists(f"rounds/{round_:03d}_{kind}.json")

    def masks(self, round_: int, kind: str) -> dict:
        return self.read(masks_name(round_, kind))

    def save_training(self, record: RoundRecord, masks: dict, trained: dict | None = None,
                      stale: tuple = ()) -> None:
        """Masks, then the trained state (ticket rounds), then the record that
        marks the training finished; then the no longer needed `stale` files."""
        name = f"rounds/{record.round:03d}_{record.kind}"
        self.write(masks_name(record.round, record.kind), masks)
        if trained is not None:
            self.write(trained_name(record.round, record.kind), trained)
        back = {new: old for old, new in self._rename.items()}
        saved = dataclasses.replace(record, layer_densities={
            back.get(k, k): v for k, v in record.layer_densities.items()})
        self.directory.write_json(f"{name}.json", dataclasses.asdict(saved))
        for name in stale:
            self.directory.remove(name)
            self._cache.pop(name, None)

    def save_result(self, records: list, config: dict) -> None:
        self.directory.write_json("result.json", {
            "config": config, "records": [dataclasses.asdict(r) for r in records],
            "instability": [dataclasses.asdict(r) for r in instability_records(self.directory)],
            "rewind_choice": choice_to_json(rewind_choice(self.directory))})

    def _translated_record(self, record):
        return dataclasses.replace(record, layer_densities={
            self._rename.get(k, k): v for k, v in record.layer_densities.items()})


def masks_name(round_: int, kind: str = "ticket") -> str:
    """Where a training's masks are kept (written before its record)."""
    return f"rounds/{round_:03d}_{kind}_masks.npz"


def trained_name(round_: int, kind: str = "ticket") -> str:
    """Where a training's trained state is kept, while a later round prunes from it."""
    return f"trained/{round_:03d}.npz" if kind == "ticket" else f"trained/{round_:03d}_{kind}.npz"


def stability_name(round_: int) -> str:
    """Where round `round_`'s ticket's instability is kept (`<name>.json`)."""
    return f"stability/{round_:03d}_ticket"


def candidate_state_name(step: int) -> str:
    """Where the dense run's state at rewind candidate `step` is kept."""
    return f"stability/rewind_{step:06d}.npz"


def candidate_name(step: int, network: str) -> str:
    """Where rewind candidate `step`'s instability is kept (`<name>.json`)."""
    return f"stability/rewind_{step:06d}_{network}"


def read_instability(directory, name) -> InstabilityRecord:
    data = directory.read_json(name)
    try:
        return InstabilityRecord(**data)
    except TypeError as error:
        raise DamagedRunError(directory.path, name, error) from None


def instability_records(directory) -> list:
    """The rounds' tickets' `InstabilityRecord`s on file, by round."""
    names = [n for n in directory.list("stability", ".json")
             if n[:3].isdigit() and n.endswith("_ticket.json")]
    return sorted((read_instability(directory, f"stability/{n}") for n in names),
                  key=lambda r: r.round)


def rewind_choice(directory) -> dict | None:
    """The rewind step chosen among candidates, with each candidate's record; None if
    not chosen (yet)."""
    if not directory.exists(REWIND_CHOICE):
        return None
    choice = directory.read_json(REWIND_CHOICE)
    network = choice.get("network", "dense")
    return {**choice, "candidates": [
        read_instability(directory, candidate_name(k, network) + ".json")
        for k in choice.get("candidates", [])]}


def read_record(directory, name: str) -> RoundRecord:
    """The `RoundRecord` in `rounds/<name>`; a damaged one is named."""
    data = directory.read_json(f"rounds/{name}")
    try:
        record = RoundRecord(**data)
    except TypeError as error:
        raise DamagedRunError(directory.path, f"rounds/{name}", error) from None
    if record.kind not in RECORD_KINDS:
        raise DamagedRunError(directory.path, f"rounds/{name}",
                              ValueError(f"unknown kind {record.kind!r}"))
    return record


def load_result(path) -> SearchResult:
    """The `SearchResult` of the run directory at `path`, from its records.

    Read from the records themselves, not `result.json`, which a kill at the
    wrong moment leaves one training behind until the search is run again.
    """
    directory = RunDirectory(path)
    if not directory.exists("search.json"):
        raise ValueError(
            f"Expected a run directory (with search.json). Received {path}, which has none: "
            "not a run directory, or one whose search never started."
        )
    saved = directory.read_json("search.json")
    records = [read_record(directory, name) for name in directory.list("rounds", ".json")]
    records.sort(key=lambda r: (r.round, RECORD_KINDS.index(r.kind)))
    config = {**saved.get("config", {}), "backend": saved.get("backend")}
    return SearchResult(records, config, instability_records(directory),
                        rewind_choice(directory))


def load_masks(path, kind: str = "ticket", rounds=None) -> dict:
    """`{round: {weight path: bool array}}` of the finished `kind` trainings in
    the run directory at `path` (or of `rounds` among them), under the paths
    the search saved them with. To transfer them to another task, pass a list:
    `TicketSearch(transfer=[found[r] for r in (1, 2, 3)])`."""
    if kind not in RECORD_KINDS:
        raise ValueError(f"Expected `kind` among {RECORD_KINDS}. Received: kind={kind!r}")
    result = load_result(path)  # Refuses a folder that holds no search.
    finished = sorted(r.round for r in result.records if r.kind == kind)
    wanted = finished if rounds is None else list(rounds)
    missing = [r for r in wanted if r not in finished]
    if missing:
        raise ValueError(f"Expected `rounds` among the finished {kind} rounds {finished} of "
                         f"{path}. Received: rounds={wanted}")
    directory = RunDirectory(path)
    return {r: {p: m.astype(bool) for p, m in directory.read_arrays(masks_name(r, kind)).items()}
            for r in wanted}
