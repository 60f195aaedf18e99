"""What a sweep engine costs per member: Ray and Slurm (submitit) against one process.

The same members (`--members` seeds of one search) run three ways, one member
at a time so that only the engine's cost differs:

- `local`: `keras_lottery.Sweep.run()`, every member in this process;
- `ray`: a local Ray started for the sweep, each member a task holding every
  CPU of the machine (so one runs at a time); Ray's start and shutdown count;
- `slurm`: submitit's local executor (Slurm's stand-in on a machine without
  one), one single-member job array after another: a fresh Python per
  member, as on a cluster, plus submitit's pickling and polling.

Each way runs in a fresh subprocess and writes fresh run directories. The
overhead per member is (engine's wall time - local's) / members, and its
share of a member's own time (local's wall time / members). `trained` sums
the members' records' own wall times (training and evaluation), so that a
member training slower under an engine shows apart from the engine's own
cost (starting processes, importing Keras, polling). A member is
`--preset` for `--rounds` pruned rounds of `--iterations` iterations, sized
so that a member takes a minute or more.

Usage:

    KERAS_LOTTERY_DATA=../shared/data python benchmarks/sweep_engines.py --backend jax
    python benchmarks/sweep_engines.py --preset lenet_300_100_mnist --members 2 --iterations 500
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

RESULT_PREFIX = "RESULT "
WAYS = ("local", "ray", "slurm")

# One way in a fresh process: the sweep, then its wall time.
CHILD = r"""
import json, os, sys, time
spec = json.loads(sys.argv[1])
import keras_lottery as kl
from keras_lottery.sweeps import engines
start = time.perf_counter()
if spec["way"] == "slurm":
    # One single-member array at a time: the local executor runs an array's
    # tasks all at once, and one at a time is what is compared here.
    for seed in spec["seeds"]:
        sweep = kl.Sweep(spec["out"], over={"seed": [seed]}, **spec["settings"])
        sweep.run(engines.Slurm(cluster="local", timeout_min=120), verbose=False)
else:
    engine = engines.Ray(cpus=os.cpu_count()) if spec["way"] == "ray" else None
    sweep = kl.Sweep(spec["out"], over={"seed": spec["seeds"]}, **spec["settings"])
    sweep.run(engine, verbose=False)
seconds = time.perf_counter() - start
trained = sum(r.wall_time for seed in spec["seeds"]
              for r in kl.load_result(sweep.directory / f"seed_{seed}").records)
print("RESULT " + json.dumps({"way": spec["way"], "seconds": seconds, "trained": trained}))
"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=("jax", "tensorflow", "torch"), default="jax")
    parser.add_argument("--preset", default="lenet_300_100_mnist")
    parser.add_argument("--members", type=int, default=3, help="seeds, one member each")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=5000)
    parser.add_argument("--ways", nargs="+", choices=WAYS, default=list(WAYS))
    return parser.parse_args(argv)


def run_way(way, args, folder):
    settings = dict(preset=args.preset, rounds=args.rounds, iterations=args.iterations,
                    verbose=0)
    spec = {"way": way, "seeds": list(range(args.members)), "settings": settings,
            "out": os.path.join(folder, way)}
    env = dict(os.environ, KERAS_BACKEND=args.backend)
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], env=env,
                          capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            found = json.loads(line[len(RESULT_PREFIX):])
            return found["seconds"], found["trained"]
    raise RuntimeError(f"{way} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def main(argv=None):
    args = parse_args(argv)
    folder = tempfile.mkdtemp(prefix="sweep_engines_")
    try:
        timed = {way: run_way(way, args, folder) for way in args.ways}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"{args.members} members of {args.preset} ({args.rounds} pruned round(s) of "
          f"{args.iterations} iterations), {args.backend}, {os.cpu_count()} CPUs, one member "
          "at a time")
    print("wall: the sweep's seconds; trained: the members' own (their records' wall_time, "
          "training and evaluation)")
    print(f"{'engine':8} {'wall s':>8} {'trained s':>10} {'wall/member':>12} "
          f"{'overhead/member':>16} {'share':>7}")
    local = timed.get("local", (None,))[0]
    for way, (total, trained) in timed.items():
        per = total / args.members
        row = f"{way:8} {total:8.1f} {trained:10.1f} {per:12.1f}"
        if local is not None and way != "local":
            extra = (total - local) / args.members
            row += f" {extra:16.1f} {extra / (local / args.members):7.1%}"
        print(row)
    print(json.dumps({"settings": vars(args), "seconds": timed, "at": time.strftime("%Y-%m-%d")}))


if __name__ == "__main__":
    main()
