"""Whole searches with two controls: each round's trainings side by side against one at a time.

A search of `--rounds` pruned rounds with the random-reinitialization and
random-pruning controls (`data_order="per_round"`, so that a round's three
trainings read one data order) runs twice per network, each in a fresh
process: `joint=False` (one training at a time) and `joint=True` (a pruned
round's ticket and controls as one compiled program). Both give the same
records bit for bit (`tests/test_joint.py`); here only their wall time, end
to end (build, compile, every training, evaluation and write), and a steady
round's: the median, over the pruned rounds after the first (whose joint
program is compiled by then), of the round's trainings' recorded times.

Networks: LeNet-300-100 on MNIST (the real data, `--data`, the first
`--train` examples), Conv-2 on random CIFAR-10-shaped images (CIFAR-10 is not
needed to time it: the step costs the same), both at batch 60, and `mlp`,
the quickstart's MNIST-1D-sized MLP (40 inputs, 100-100-10) on 3,500 random
examples at batch 100, ten epochs a training (35 steps an epoch: per-step
and per-epoch costs outweigh the arithmetic). All compiled with
`keras_lottery.fast_compile_settings`, Adam, validation every 100
iterations, the test set at the early stop and the end.

With `--seeds N` each side runs N searches (seeds 0 to N-1) on one data
order (`data_order="shared"`): one after another, one training at a time,
against `run_together` (each round's trainings of every seed as one
program; the dense rounds too). A round's time is then the sum over seeds.

    KERAS_BACKEND=jax python benchmarks/joint_rounds.py --data ../shared/data/mnist.npz
    python benchmarks/joint_rounds.py --data mnist.npz --networks mlp lenet --seeds 3
    python benchmarks/joint_rounds.py --data mnist.npz --backends jax torch --networks lenet
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

RESULT_PREFIX = "RESULT "

CHILD = r"""
import json, sys, time
spec = json.loads(sys.argv[1])
import numpy as np
import keras
import keras_lottery as kl
from keras_lottery import models

began = time.perf_counter()
if spec["network"] == "lenet":
    with np.load(spec["data"]) as data:
        x = (data["x_train"][:spec["train"]].astype("float32") / 255)[..., None]
        y = data["y_train"][:spec["train"]].astype("int32")
        xt = (data["x_test"][:2000].astype("float32") / 255)[..., None]
        yt = data["y_test"][:2000].astype("int32")
    network, lr = models.lenet_300_100, 1.2e-3
elif spec["network"] == "mlp":
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3500, 40)).astype("float32")
    y = rng.integers(0, 10, 3500).astype("int32")
    xt, yt = x[:2000], y[:2000]
    network, lr = models.mlp, 1e-3
else:
    rng = np.random.default_rng(0)
    x = rng.random((spec["train"], 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, spec["train"]).astype("int32")
    xt, yt = x[:2000], y[:2000]
    network, lr = models.conv2, 2e-4


def search(seed):
    keras.utils.set_random_seed(seed)
    model = network()
    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy",
                  metrics=["accuracy"], **kl.fast_compile_settings(100))
    return kl.TicketSearch(
        model, x, y, rounds=spec["rounds"], controls=["random_reinit", "random_pruning"],
        data_order="shared" if spec["seeds"] > 1 else "per_round", joint=spec["joint"],
        eval_every=100, validation_data=(xt[:1000], yt[:1000]),
        test_data=(xt[1000:], yt[1000:]),
        epochs=spec["epochs"] * (10 if spec["network"] == "mlp" else 1),
        batch_size=100 if spec["network"] == "mlp" else 60, verbose=0,
        directory=f"{spec['out']}/seed_{seed}", seed=seed)


searches = [search(seed) for seed in range(spec["seeds"])]
if spec["joint"] and len(searches) > 1:
    results = kl.run_together(searches)
else:
    results = [one.run() for one in searches]
records = [r for result in results for r in result.records]
seconds = time.perf_counter() - began
print("RESULT " + json.dumps({
    "seconds": seconds, "trainings": len(records),
    "trained": sum(r.wall_time for r in records),
    "rounds": [sum(r.wall_time for r in records if r.round == k)
               for k in range(spec["rounds"] + 1)],
    "accuracy": [round(r.final.get("test_accuracy", float("nan")), 4) for r in records]}))
"""


def run(backend, network, joint, args, out):
    spec = dict(network=network, joint=joint, data=args.data, rounds=args.rounds,
                epochs=args.epochs, train=args.train, seeds=args.seeds, out=out)
    env = dict(os.environ, KERAS_BACKEND=backend)
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], env=env,
                          capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode or not lines:
        raise SystemExit(f"{backend} {network} joint={joint} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="mnist.npz (Keras layout)")
    parser.add_argument("--backends", nargs="+", default=["jax", "tensorflow", "torch"])
    parser.add_argument("--networks", nargs="+", default=["lenet", "mlp", "conv2"],
                        choices=["lenet", "mlp", "conv2"])
    parser.add_argument("--rounds", type=int, default=4, help="pruned rounds (at least 2)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train", type=int, default=55000,
                        help="training examples of lenet and conv2")
    parser.add_argument("--seeds", type=int, default=1,
                        help="searches of seeds 0..N-1; above 1, data_order='shared' and the "
                        "joint side runs them with run_together (every round's trainings of "
                        "every seed as one program), the other one search after another")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    rows = []
    print("| backend | network | search s, one at a time | joint | speedup | steady round s, one "
          "at a time | joint | speedup | same accuracies |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for backend in args.backends:
        for network in args.networks:
            with tempfile.TemporaryDirectory() as scratch:
                alone = run(backend, network, False, args, os.path.join(scratch, "alone"))
                joint = run(backend, network, True, args, os.path.join(scratch, "joint"))
            speedup = alone["seconds"] / joint["seconds"]
            # Rounds after the first pruned one: the joint program is compiled by then.
            steady = [statistics.median(side["rounds"][2:]) for side in (alone, joint)]
            same = alone["accuracy"] == joint["accuracy"]
            rows.append(dict(backend=backend, network=network, alone=alone, joint=joint,
                             speedup=speedup, steady=steady))
            print(f"| {backend} | {network} | {alone['seconds']:.1f} | {joint['seconds']:.1f} "
                  f"| {speedup:.2f}x | {steady[0]:.2f} | {steady[1]:.2f} "
                  f"| {steady[0] / steady[1]:.2f}x | {'yes' if same else 'NO'} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
