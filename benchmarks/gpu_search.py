"""Steps per second of VGG-19 or ResNet-18, plain and masked, and of a short search: a GPU check.

For a machine with a GPU (or several): per backend, in one subprocess each,
it builds the network (`keras_lottery.models.vgg19` or `resnet18`, CIFAR-10
shape), times `--steps` training steps of the plain network
(`keras_lottery.strip` of the masked one, same weights) and of the masked
one pruned to 20% density, alternating for `--repeats` timings each after
an untimed warm-up (compilation), then runs a one-round `TicketSearch`
(dense round and one pruned round of `--search-steps` iterations, evaluated
once per round on 1,000 held-out images) and reports the search's steps per
second, evaluation included. With `--data-parallel` everything runs in
`keras_lottery.data_parallel()` (all GPUs); `--mixed-precision` sets
`mixed_float16` or `mixed_bfloat16`.

Data: random CIFAR-10-shaped images (32x32x3, 10 classes), since the time of
a step does not depend on pixel values and the machine may be offline.
SGD with momentum 0.9, learning rate 0.1, batch `--batch-size` (the paper's
VGG-19 recipe: 0.1, batch 64; ResNet-18: 0.03, batch 128).

Nothing in the test suite needs a GPU or this script. On a CPU the same
script is a smoke run (`--steps 3 --search-steps 4 --batch-size 8`).

Usage:

    python benchmarks/gpu_search.py --network vgg19 --backends jax torch tensorflow
    python benchmarks/gpu_search.py --network resnet18 --data-parallel --mixed-precision mixed_bfloat16
    python benchmarks/gpu_search.py --steps 3 --search-steps 4 --batch-size 8   # CPU smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

BACKENDS = ("jax", "torch", "tensorflow")
RESULT_PREFIX = "RESULT "
DENSITY = 0.2


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--network", choices=("vgg19", "resnet18"), default="vgg19")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100, help="timed steps per timing")
    parser.add_argument("--repeats", type=int, default=3, help="timings per model")
    parser.add_argument("--search-steps", type=int, default=200,
                        help="iterations of each of the search's two trainings")
    parser.add_argument("--data-parallel", action="store_true",
                        help="run inside keras_lottery.data_parallel() (all devices)")
    parser.add_argument("--mixed-precision", choices=("mixed_float16", "mixed_bfloat16"))
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("batch_size", "steps", "repeats", "search_steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, received {getattr(args, name)}")
    return args


def worker(args):
    import contextlib

    import keras
    import numpy as np

    import keras_lottery as kl

    if args.mixed_precision:
        keras.mixed_precision.set_global_policy(args.mixed_precision)
    backend = keras.backend.backend()
    rng = np.random.default_rng(0)
    examples = args.batch_size * max(args.steps, args.search_steps)
    x = rng.random((examples, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, examples)
    held_out = (x[:1000], y[:1000])

    def compiled(model):
        model.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                      "sparse_categorical_crossentropy", metrics=["accuracy"],
                      **kl.fast_compile_settings(None))
        return model

    scope = kl.data_parallel() if args.data_parallel else contextlib.nullcontext()
    with scope:
        keras.utils.set_random_seed(0)
        masked = getattr(kl.models, args.network)()
        masks = kl.magnitude_prune(kl.get_weights(masked), kl.get_masks(masked), 1 - DENSITY)
        plain = compiled(kl.strip(masked))
        kl.apply_masks(masked, masks)
        masked = compiled(masked)
        engine = kl.distribution.describe(masked)

        def timed(model):
            began = time.perf_counter()
            model.fit(x, y, batch_size=args.batch_size, steps_per_epoch=args.steps, epochs=1,
                      verbose=0)
            return args.steps / (time.perf_counter() - began)

        for model in (plain, masked):  # Warm-up: compilation and first steps.
            model.fit(x, y, batch_size=args.batch_size, steps_per_epoch=min(args.steps, 5),
                      epochs=1, verbose=0)
        rates = {"plain": [], "masked": []}
        for _ in range(args.repeats):
            rates["plain"].append(timed(plain))
            rates["masked"].append(timed(masked))

        keras.utils.set_random_seed(0)
        model = compiled(getattr(kl.models, args.network)())
        search = kl.TicketSearch(
            model, x, y, rounds=1, batch_size=args.batch_size, epochs=1,
            steps_per_epoch=args.search_steps, validation_data=held_out, verbose=0)
        began = time.perf_counter()
        result = search.run()
        search_seconds = time.perf_counter() - began
    plain_rate = statistics.median(rates["plain"])
    masked_rate = statistics.median(rates["masked"])
    device = "gpu" if _has_gpu(backend) else "cpu"
    print(RESULT_PREFIX + json.dumps({
        "backend": backend, "device": device, "engine": engine["engine"] or "one device",
        "replicas": engine["replicas"], "plain_steps_per_s": plain_rate,
        "masked_steps_per_s": masked_rate, "masked_over_plain_time": plain_rate / masked_rate,
        "search_steps_per_s": sum(r.iterations for r in result.records) / search_seconds,
        "search_seconds": search_seconds, "density": result.records[-1].density,
    }), flush=True)


def _has_gpu(backend):
    if backend == "jax":
        import jax

        return jax.default_backend() == "gpu"
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    rows = []
    passed = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--worker"]
    for backend in args.backends:
        done = subprocess.run([sys.executable, __file__, *passed, "--worker"],
                              env=dict(os.environ, KERAS_BACKEND=backend),
                              capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
        if done.returncode or not lines:
            print(f"{backend}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(lines[-1][len(RESULT_PREFIX):]))
    print(f"{args.network}, batch {args.batch_size}, masked at {DENSITY:.0%} density"
          + (f", {args.mixed_precision}" if args.mixed_precision else ""))
    print(f"{'backend':<11} {'device':<6} {'engine':<17} {'plain st/s':>10} "
          f"{'masked st/s':>11} {'time ratio':>10} {'search st/s':>11}")
    for r in rows:
        print(f"{r['backend']:<11} {r['device']:<6} {r['engine'] + ' x' + str(r['replicas']):<17} "
              f"{r['plain_steps_per_s']:>10.2f} {r['masked_steps_per_s']:>11.2f} "
              f"{r['masked_over_plain_time']:>10.3f} {r['search_steps_per_s']:>11.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": rows}, f, indent=1)
    return 0 if len(rows) == len(args.backends) else 1


if __name__ == "__main__":
    sys.exit(main())
