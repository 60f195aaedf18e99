"""Where a sweep's members run: here one after another, on Ray, or on Slurm.

Every engine runs the same thing per member, `run_member`: the member's
`keras-lottery run` in a Python process whose Keras backend is the sweep's,
resuming from the member's run directory whatever it finished before. What an
engine adds is placement (resources per member) and retries:

- `Local`: members one after another in this process (the default).
- `Ray`: one Ray task per member, with its CPUs and GPUs, on a Ray started
  for the sweep or on an existing cluster's address. A member whose worker
  or node dies is run again by Ray (`retries`) and resumes from its
  directory, which must lie on storage every node shares (Ray's storage
  sync is not used: a run directory is written as it trains, not at the end).
- `Slurm`: one Slurm job array through `submitit`, a task per member. A task
  that Slurm preempts or times out is requeued by submitit and resumes.

A member's run directory is held by `running.lock` while it trains. Its
holder names an owner (`OWNER_VARIABLE`): the sweep's engine, which starts
a member's next attempt only once the last one has ended (Ray: its worker
died; Slurm: its job ended), so that attempt takes over the lock of the last
even when it was left on another node.
"""

import os
import pathlib
import re
import shlex
import socket

from keras_lottery.search.run_lock import OWNER_VARIABLE, RunBusyError

ENGINES = ("local", "ray", "slurm")
# A client's HTTP/2 connection preface and an empty SETTINGS frame (RFC 9113, 3.4).
_HTTP2_OPENING = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
# Environment variables a worker takes from the process that starts the sweep.
FORWARDED = ("KERAS_LOTTERY_DATA", "KERAS_HOME", "TFDS_DATA_DIR", "XLA_FLAGS")


class MemberFailed(RuntimeError):
    """A member's search raised: its own error, named by the member (not retried)."""


def run_member(argv, backend, cwd, owner=None) -> str:
    """Runs one member (`keras-lottery run ARGV`) in this process and returns its directory.

    The entry point of Ray's and Slurm's workers: the backend must already be
    `backend` (the engines set `KERAS_BACKEND` before Python starts);
    relative paths are the sweep's (`cwd`); `owner` lets this attempt take over
    a lock its engine's earlier attempt left.
    """
    import keras

    if keras.backend.backend() != backend:
        raise MemberFailed(f"Expected a worker on the sweep's {backend} backend. Received a "
                           f"worker on {keras.backend.backend()}: set KERAS_BACKEND={backend} "
                           "for the workers")
    out = argv[list(argv).index("--out") + 1]
    previous = os.environ.get(OWNER_VARIABLE)
    try:
        os.chdir(cwd)
        if owner:
            os.environ[OWNER_VARIABLE] = owner
        from keras_lottery import cli

        cli.run_flags(list(argv))
    except RunBusyError:
        raise
    except SystemExit as error:
        if not isinstance(error.code, str):
            # An exit with a number is not the member's refusal but its process
            # ending on purpose: submitit exits so after requeueing a preempted task.
            raise
        raise MemberFailed(f"member {out}: {error.code.removeprefix('keras-lottery run: ')}"
                           ) from error
    except (ValueError, TypeError, OSError) as error:
        raise MemberFailed(f"member {out}: {type(error).__name__}: {error}") from error
    finally:
        if previous is None:
            os.environ.pop(OWNER_VARIABLE, None)
        else:
            os.environ[OWNER_VARIABLE] = previous
    return out


def named(name, **options):
    """The engine `name` (`ENGINES`) with its options."""
    engines = {"local": Local, "ray": Ray, "slurm": Slurm}
    if name not in engines:
        raise ValueError(f"Expected `engine` among {list(ENGINES)}. Received: {name!r}")
    return engines[name](**options)


def _say(text, verbose):
    if verbose:
        print(f"[keras-lottery sweep] {text}", flush=True)


class Local:
    """Members one after another in this process; a member another process
    holds is skipped (as `run --seeds` does), and a member that fails stops
    the sweep (the members after it have not started)."""

    name = "local"

    def check(self):
        pass

    def run(self, members, backend, directory, owner, verbose=True):
        skipped = []
        for number, member in enumerate(members, 1):
            _say(f"member {number}/{len(members)}: {member.name}", verbose)
            try:
                run_member(member.argv, backend, os.getcwd())
            except RunBusyError as error:
                _say(f"{member.name} skipped: {error}", verbose)
                skipped.append(member.name)
        if skipped:
            _say(f"skipped, running elsewhere: {skipped}", verbose)
        return skipped


def _extra(module, extra):
    """Imports `module`, which the optional extra `extra` installs."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ValueError(f"Expected the {extra!r} engine's package installed: pip install "
                         f"'keras-lottery[{extra}]'. Received: no module named "
                         f"{module!r}") from None


def _worker_environment(backend):
    return {"KERAS_BACKEND": backend,
            **{k: os.environ[k] for k in FORWARDED if k in os.environ}}


class Ray:
    """Each member a Ray task.

    Args:
        address: an existing cluster (`"host:port"`, or `"auto"` for the one
            this machine belongs to, or `RAY_ADDRESS`'s); None starts a local
            Ray for the sweep, whatever `RAY_ADDRESS` says.
        cpus, gpus: resources each member holds (a GPU each: `gpus=1`).
        retries: times a member whose worker or node dies is run again.
        connect_timeout: seconds an address has to answer.
    """

    name = "ray"

    def __init__(self, address=None, cpus=1, gpus=0, retries=3, connect_timeout=5.0):
        from keras_lottery import checks

        self.address = address
        self.cpus = checks.positive("cpus", cpus)
        self.gpus = checks.number("gpus", gpus, 0)
        self.retries = checks.integer("retries", retries, 0)
        self.connect_timeout = checks.positive("connect_timeout", connect_timeout)

    def check(self):
        """The package installed and the cluster's address answering, in seconds."""
        _extra("ray", "ray")
        if self.address in (None, "auto", "local"):
            return
        text = str(self.address).removeprefix("ray://")
        host, _, port = text.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")  # An IPv6 address, [::1]:6379.
        if not host or not port.isdigit():
            raise ValueError(f"Expected `address` 'host:port', 'auto' or None. Received: "
                             f"{self.address!r}")
        # Ray's head answers gRPC: an HTTP/2 server replies to a client's opening
        # with a SETTINGS frame at once, before any Ray handshake (which could hang).
        try:
            with socket.create_connection((host, int(port)), self.connect_timeout) as sock:
                sock.settimeout(self.connect_timeout)
                sock.sendall(_HTTP2_OPENING)
                reply = b""
                while len(reply) < 9:  # A frame's header is 9 bytes, maybe in pieces.
                    piece = sock.recv(9 - len(reply))
                    if not piece:
                        break
                    reply += piece
        except OSError as error:
            reply = f"{type(error).__name__}: {error}"
        if not (isinstance(reply, bytes) and len(reply) == 9 and reply[3] == 0x4):
            why = reply if isinstance(reply, str) else f"no HTTP/2 reply: {reply!r}"
            raise ValueError(f"Expected a Ray cluster answering at `address`. Received: "
                             f"{self.address!r}, which did not answer within "
                             f"{self.connect_timeout:g} s ({why})")

    def run(self, members, backend, directory, owner, verbose=True):
        ray = _extra("ray", "ray")
        started = not ray.is_initialized()  # Else the caller's own Ray, left running.
        if started:
            ray.init(address=self.address or "local", include_dashboard=False,
                     log_to_driver=verbose)
        try:
            if started and self.address is None:  # Nothing will join: what it has is all.
                have = ray.cluster_resources()
                for name, asked in (("CPU", self.cpus), ("GPU", self.gpus)):
                    if asked > have.get(name, 0):
                        raise ValueError(
                            f"Expected `{name.lower()}s` per member within this machine's "
                            f"{have.get(name, 0):g} {name}s. Received: {name.lower()}s={asked:g}")
            # The environment goes with each task, so that it holds on a Ray the caller
            # started too.
            task = ray.remote(num_cpus=self.cpus, num_gpus=self.gpus,
                              max_retries=self.retries, retry_exceptions=False,
                              runtime_env={"env_vars": _worker_environment(backend)})(run_member)
            pending = {task.remote(m.argv, backend, os.getcwd(), owner): m for m in members}
            _say(f"{len(members)} members on Ray ({ray.cluster_resources().get('CPU', 0):g} "
                 "CPUs)", verbose)
            return _collect(pending, ray, verbose)
        finally:
            if started:
                ray.shutdown()


def _collect(pending, ray, verbose):
    failed, skipped = [], []
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        member = pending.pop(done[0])
        try:
            ray.get(done[0])
            _say(f"{member.name} done", verbose)
        except ray.exceptions.RayTaskError as error:
            cause = getattr(error, "cause", None) or error  # The member's own exception.
            if isinstance(cause, RunBusyError):
                skipped.append(member.name)
                _say(f"{member.name} skipped: {cause}", verbose)
            else:
                failed.append(f"{member.name}: {type(cause).__name__}: {cause}")
        except ray.exceptions.RayError as error:  # Its worker or node died, retries spent.
            failed.append(f"{member.name}: {type(error).__name__}: {error}")
    if failed:
        raise MemberFailed("Expected every member to finish. Received failures (finished "
                           "members are kept; run the sweep again to resume):\n"
                           + "\n".join(failed))
    return skipped


class Slurm:
    """The members as one Slurm job array, through `submitit`.

    Args:
        folder: submitit's logs and job files (default: the sweep's
            `.submitit` folder).
        partition: the Slurm partition.
        cpus, gpus: per member (`cpus_per_task`, `gpus_per_node`).
        timeout_min: each task's time limit; a task that reaches it is
            requeued and resumes from its run directory, up to `requeues`
            times (then it fails; the sweep run again resumes it).
        requeues: times a task that timed out is requeued (submitit's
            `max_num_timeout`); preemptions are requeued without limit.
        parallel: tasks of the array running at once (`%N`); None: Slurm's.
        setup: shell lines run before each task (`module load ...`).
        cluster: "slurm"; "local" runs the tasks as local processes
            (submitit's local executor), "debug" in this process.
        options: other `slurm_*` parameters of submitit (`slurm_account`, ...).
    """

    name = "slurm"

    def __init__(self, folder=None, partition=None, cpus=1, gpus=0, timeout_min=60,
                 requeues=3, parallel=None, setup=(), cluster="slurm", **options):
        from keras_lottery import checks

        self.folder = folder
        self.partition = partition
        self.cpus = checks.integer("cpus", cpus, 1)
        self.gpus = checks.integer("gpus", gpus, 0)
        self.timeout_min = checks.integer("timeout_min", timeout_min, 1)
        self.requeues = checks.integer("requeues", requeues, 0)
        self.parallel = None if parallel is None else checks.integer("parallel", parallel, 1)
        self.setup = list(setup)
        self.cluster = checks.choice("cluster", cluster, ("slurm", "local", "debug"))
        self.options = options

    def check(self):
        _extra("submitit", "slurm")

    def run(self, members, backend, directory, owner, verbose=True):
        submitit = _extra("submitit", "slurm")
        folder = self.folder or pathlib.Path(directory) / ".submitit"
        executor = submitit.AutoExecutor(folder=str(folder), cluster=self.cluster,
                                         slurm_max_num_timeout=self.requeues)
        parameters = dict(timeout_min=self.timeout_min, cpus_per_task=self.cpus,
                          gpus_per_node=self.gpus, name="keras-lottery")
        if self.cluster == "slurm":
            environment = _worker_environment(backend)
            parameters.update(
                slurm_setup=[*(f"export {k}={shlex.quote(v)}" for k, v in environment.items()),
                             *self.setup],
                **({"slurm_partition": self.partition} if self.partition else {}),
                **({"slurm_array_parallelism": self.parallel} if self.parallel else {}),
                **self.options)
        executor.update_parameters(**parameters)
        previous = {k: os.environ.get(k) for k in _worker_environment(backend)}
        os.environ.update(_worker_environment(backend))  # Local tasks inherit it.
        try:
            jobs = executor.map_array(_Requeued(backend, os.getcwd(), owner),
                                      [m.argv for m in members])
        finally:
            for key, value in previous.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        _say(f"{len(members)} members as Slurm job array {jobs[0].job_id.split('_')[0]} "
             f"(logs in {folder})" if jobs else "no members", verbose)
        failed, skipped = [], []
        for job, member in zip(jobs, members):
            try:
                job.result()
                _say(f"{member.name} done", verbose)
            except Exception as error:  # submitit re-raises the task's error as text.
                text = str(error)
                if "RunBusyError" in text:
                    skipped.append(member.name)
                    _say(f"{member.name} skipped: held by another process", verbose)
                else:
                    failed.append(f"{member.name}: {_task_error(text)} (log: "
                                  f"{job.paths.stderr})")
        if failed:
            raise MemberFailed("Expected every member to finish. Received failures (finished "
                               "members are kept; run the sweep again to resume):\n"
                               + "\n".join(failed))
        return skipped


def _task_error(text):
    """The task's own error in submitit's report of it: the traceback's last line
    (the report ends with the log files' paths)."""
    lines = [line.strip() for line in text.splitlines()]
    errors = [line for line in lines if re.match(r"^[\w.]+(Error|Failed|Exception)\b", line)]
    return errors[-1] if errors else (lines[0] if lines else "no message")


class _Requeued:
    """A Slurm task: `run_member`, requeued when preempted or timed out
    (`submitit.helpers.Checkpointable`'s protocol: the run directory is the checkpoint)."""

    def __init__(self, backend, cwd, owner):
        self.backend, self.cwd, self.owner = backend, cwd, owner

    def __call__(self, argv):
        return run_member(argv, self.backend, self.cwd, self.owner)

    def checkpoint(self, argv):
        import submitit

        return submitit.helpers.DelayedSubmission(self, argv)
