"""What changing masks during `fit` costs: masked training with a sparse-training
callback updating every 100 steps against the same masked training without it.

LeNet-300-100 (`keras_lottery.models`, masked) on MNIST (`--data`, 60,000
images), batch 60, Adam(1.2e-3), compiled as the presets compile
(`keras_lottery.fast_compile_settings(100)`: XLA and 100 steps per execution
on TensorFlow and JAX, torch.compile on torch). Per backend, after a warm-up
epoch that excludes compilation, it times one epoch at a time, in turn:

- `none`: no callback (the masks stay as they are);
- `gradual`: `GradualPruning(PolynomialDecay(0, 0.9, 0, 100_000, frequency=100))`,
  so that every update (9 an epoch) prunes more weights and writes the masks,
  the weights and the optimizer's slots;
- `set`, `rigl`: `SET(0.1)` and `RigL(0.1, batch_size=60)`, an update every
  100 steps (RigL's takes a dense gradient on 60 examples).

It reports the median seconds per epoch over `--repeats` epochs and each
callback's ratio to `none` (the goal is <= 1.05 for `gradual`). The
backend is fixed when Keras is first imported, so each backend runs in its
own subprocess, which prints one JSON line; the parent prints the table.

    python benchmarks/sparse_training_cost.py --data /path/to/mnist.npz
    python benchmarks/sparse_training_cost.py --data mnist.npz --backends jax --repeats 5
"""

import argparse
import json
import os
import subprocess
import sys
import time

METHODS = ("none", "gradual", "set", "rigl")


def measure(data, repeats, limit):
    import keras
    import numpy as np

    import keras_lottery as kl
    from keras_lottery import models

    with np.load(data) as arrays:
        x = (arrays["x_train"][:limit, :, :, None] / 255.0).astype("float32")
        y = arrays["y_train"][:limit].astype("int32")
    keras.utils.set_random_seed(0)

    def build():
        model = models.get("lenet_300_100", input_shape=(28, 28, 1), num_classes=10)
        model.compile(keras.optimizers.Adam(1.2e-3), "sparse_categorical_crossentropy",
                      **kl.fast_compile_settings(100))
        return model

    made = {
        "none": lambda: [],
        "gradual": lambda: [kl.GradualPruning(kl.PolynomialDecay(0.0, 0.9, 0, 100_000,
                                                                  frequency=100))],
        "set": lambda: [kl.SET(0.1, update_every=100, end_step=10**6)],
        "rigl": lambda: [kl.RigL(0.1, (x, y), batch_size=60, update_every=100,
                                 end_step=10**6)],
    }
    built = {method: build() for method in METHODS}
    times = {method: [] for method in METHODS}
    for method, model in built.items():  # Warm-up: compilation and tracing.
        model.fit(x, y, batch_size=60, epochs=1, verbose=0, callbacks=made[method]())
    for _ in range(repeats):
        for method, model in built.items():
            start = time.perf_counter()
            model.fit(x, y, batch_size=60, epochs=1, verbose=0, callbacks=made[method]())
            times[method].append(time.perf_counter() - start)
    return {method: float(np.median(found)) for method, found in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="mnist.npz in Keras' layout")
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=60_000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(measure(args.data, args.repeats, args.limit)), flush=True)
        return 0
    rows = {}
    for backend in args.backends:
        done = subprocess.run(
            [sys.executable, __file__, "--child", "--data", args.data, "--repeats",
             str(args.repeats), "--limit", str(args.limit)],
            capture_output=True, text=True, env=dict(os.environ, KERAS_BACKEND=backend))
        found = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode or not found:
            raise SystemExit(f"{backend} failed:\n{done.stderr[-3000:]}")
        rows[backend] = json.loads(found[0][len("RESULT "):])
    print("| backend | " + " | ".join(f"{m} s/epoch" for m in METHODS) + " | "
          + " | ".join(f"{m} / none" for m in METHODS[1:]) + " |")
    print("|---" * (2 * len(METHODS)) + "|")
    for backend, found in rows.items():
        print(f"| {backend} | " + " | ".join(f"{found[m]:.2f}" for m in METHODS) + " | "
              + " | ".join(f"{found[m] / found['none']:.3f}" for m in METHODS[1:]) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
