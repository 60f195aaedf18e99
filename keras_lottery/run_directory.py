"""A search's directory on disk, written so that an interruption loses nothing.

Every file is written to a temporary name and renamed into place, so a file
either exists whole or not at all; a record file is written last and marks
its round finished.

Layout:
    search.json                 the configuration a resume must match
    theta0.npz, rewind.npz      initial state and rewind state (if not θ0)
    rounds/003_ticket.json      one record per trained network
    rounds/003_ticket_masks.npz its masks (also for random pruning)
    trained/003.npz             trained state of a ticket round, to prune from
    result.json                 all records so far (SearchResult)
"""

import json
import os
import pathlib
import tempfile

import numpy as np


class RunDirectory:
    def __init__(self, path):
        self.path = pathlib.Path(path)

    def exists(self, name: str) -> bool:
        return (self.path / name).exists()

    def write_json(self, name: str, data) -> None:
        self._write(name, lambda f: f.write(json.dumps(data, indent=1, default=repr).encode()))

    def read_json(self, name: str):
        return json.loads((self.path / name).read_text())

    def write_arrays(self, name: str, arrays: dict) -> None:
        # Paths contain "/", so keys go in a list and arrays by position.
        keys = list(arrays)
        payload = {f"a{i}": np.asarray(arrays[k]) for i, k in enumerate(keys)}
        self._write(name, lambda f: np.savez(f, __keys__=np.array(keys), **payload))

    def read_arrays(self, name: str) -> dict:
        with np.load(self.path / name) as data:
            return {str(k): data[f"a{i}"] for i, k in enumerate(data["__keys__"])}

    def list(self, folder: str, suffix: str) -> list:
        directory = self.path / folder
        return sorted(p.name for p in directory.glob(f"*{suffix}")) if directory.exists() else []

    def remove(self, name: str) -> None:
        (self.path / name).unlink(missing_ok=True)

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
