"""One process at a time per run directory: `running.lock`, naming its host and process.

Two processes training one directory would each prune and write the same
rounds. Processes of one machine given the same `--seeds` rely on this to
share the seeds out: one that finds a directory held skips it (across
machines, sweeps run on Ray or Slurm: `keras_lottery.sweeps`). The lock is
a file created exclusively (`O_EXCL`, which NFS is documented to honour, not
every network file system), holding its holder's host, process id, start
time and a random token:

- a lock of this host whose process has ended (a kill) is taken over, one
  process at a time: under a second exclusive file, `running.lock.takeover`,
  the lock is read again and replaced only if it still names the dead holder;
- a lock of another host is never taken over, since this host cannot tell
  whether that process runs: the error names the file to delete once that
  machine is gone;
- a process removes the lock on leaving only if it still holds its token.

Hosts are told apart by name, processes by id: containers sharing a host
name but not a process namespace would see each other's processes as ended.

A sweep engine (Ray, Slurm: `keras_lottery.sweeps.engines`) runs a member's
next attempt only once the last has ended, on whichever node. It names its
attempts' locks with one owner (`OWNER_VARIABLE` in the environment), and a
lock of the same owner is taken over from another host (on its own host, only
once its process has ended, as any lock).
"""

import contextlib
import json
import os
import pathlib
import secrets
import socket
import time

LOCK = "running.lock"
TAKEOVER = "running.lock.takeover"
# A takeover file older than this was left by a process killed in the middle of one.
TAKEOVER_STALE_SECONDS = 60
# The environment variable naming the engine whose attempts hold this lock.
OWNER_VARIABLE = "KERAS_LOTTERY_LOCK_OWNER"


class RunBusyError(ValueError):
    """Another process is running a search in this directory."""


@contextlib.contextmanager
def held(path):
    """Holds `path/running.lock` within the block; raises `RunBusyError` if another process does.

    Folders this creates are removed again if they are still empty when the
    block ends: a run refused before it wrote anything leaves nothing.
    """
    path = pathlib.Path(path)
    created = _missing_folders(path)
    path.mkdir(parents=True, exist_ok=True)
    me = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time(),
          "token": secrets.token_hex(8)}
    if os.environ.get(OWNER_VARIABLE):
        me["owner"] = os.environ[OWNER_VARIABLE]
    try:
        _acquire(path, me)
    except BaseException:
        _remove_empty(created)
        raise
    try:
        yield
    finally:
        if _holder(path / LOCK).get("token") == me["token"]:
            (path / LOCK).unlink(missing_ok=True)
        _remove_empty(created)


def _acquire(path, me):
    lock = path / LOCK
    if _create(lock, me):
        return
    holder = _holder(lock)
    if _ended(holder, me) and _take_over(path, holder, me):
        return
    since = time.strftime("%Y-%m-%d %H:%M", time.localtime(holder.get("since", 0)))
    raise RunBusyError(
        f"Expected a run directory no other process is running. Received {str(path)!r}, held "
        f"by process {holder.get('pid')} on {holder.get('host')!r} since {since}. Wait for "
        f"it, or, if no search runs there any more, delete {str(lock)!r}."
    )


def _take_over(path, holder, me) -> bool:
    """Replaces the lock of an ended process, unless another process is doing so or did."""
    guard = path / TAKEOVER
    if not _create(guard, me):
        try:
            age = time.time() - guard.stat().st_mtime
        except FileNotFoundError:
            age = 0.0  # Just finished by another process: its lock stands.
        if age < TAKEOVER_STALE_SECONDS:
            return False
        guard.unlink(missing_ok=True)
        if not _create(guard, me):
            return False
    try:
        lock = path / LOCK
        if lock.exists() and _holder(lock) != holder:
            return False  # Taken over by another process since it was read.
        lock.unlink(missing_ok=True)
        return _create(lock, me)
    finally:
        guard.unlink(missing_ok=True)


def _create(file, content) -> bool:
    try:
        fd = os.open(file, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(content))
    return True


def _holder(lock) -> dict:
    try:
        holder = json.loads(lock.read_text())
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}  # Gone, being written or damaged: held by no one known.


def _ended(holder, me) -> bool:
    """Whether the lock's process was of this host and no longer runs (or is this one),
    or was an earlier attempt of the engine this one is run by."""
    if (me.get("owner") and holder.get("owner") == me["owner"]
            and holder.get("host") != me["host"]):
        return True  # On this host, the process is asked instead (below).
    if holder.get("host") != me["host"] or not isinstance(holder.get("pid"), int):
        return False
    if holder["pid"] == me["pid"]:
        return True
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # Alive, another user's.
    return False


def _missing_folders(path):
    """The folders from `path` up that do not exist yet, deepest first."""
    missing = []
    while not path.exists():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    return missing


def _remove_empty(folders):
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return  # Not empty (or gone): nor are the folders above it.
