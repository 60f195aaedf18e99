"""How much faster a structured ticket runs once `keras_lottery.structured.shrink` removes its units.

Two cases, as issue 10 asks:

- `lenet`: LeNet-300-100 with 25% of its hidden neurons kept (300 -> 75,
  100 -> 25); 28x28x1 inputs.
- `conv4`: Conv-4 (paper's, 3x3 "same" convolutions 64, 64, pool, 128, 128,
  pool, Dense 256, 256, 10) with 30% of its filters kept (64 -> 19,
  128 -> 38); 32x32x3 inputs. Its Dense layers keep their neurons and lose
  only the inputs of removed filters.

The kept units are drawn at random (the speed does not depend on which) and
set as masks with `keras_lottery.structured.unit_masks.remove_units`; the
dense model is `keras_lottery.strip()` of the model before pruning and the
shrunk one `keras_lottery.structured.shrink()` of the pruned one (the script checks
that their predictions match the masked model's). Both are plain Keras.

For each backend (one subprocess each: the backend is fixed at import) it
times, alternating dense and shrunk, `--repeats` times each:

- inference: `predict` over the inputs (LeNet 6,000, Conv-4 1,200 random
  images) in batches of 600;
- training: one epoch of `fit` over the same inputs in batches of 60 (Adam,
  sparse categorical cross-entropy from logits), after a warm-up epoch that
  excludes compilation and tracing.

`--multiple-of 8` rounds each kept count up to a multiple of 8 (Conv-4:
24 and 40 filters instead of 19 and 38), to see how much of the gap is the
odd channel counts, which vectorize badly. `--train-batch`,
`--predict-batch` and `--scale` (times the inputs) show how much of it is
the fixed cost of a step, which a smaller model does not shrink.

It prints, per model and backend, the median seconds, the measured speedup
(dense / shrunk), the ideal speedup from the multiply-accumulates of the
Dense and convolution layers (dense MACs / shrunk MACs), and the share of
the ideal reached; the goal is at least 70%. Random inputs: the time of a
step does not depend on the data.

Beside them, the *floor*: the same `predict` or `fit` of a model that
only averages each input and maps it to 10 outputs, which costs what any
model pays (the inputs moved in, the loop's steps, the loss, an update) and
no arithmetic to speak of; and the speedup of the time above it,
(dense - floor) / (shrunk - floor), the part that removing units can cut.
Last, the activation ratio: the values the Dense and convolution layers
output per example, dense / shrunk. It shrinks with the kept units alone,
where MACs shrink with kept inputs times kept outputs, so it is the
speedup to expect where a layer's time goes to memory, not arithmetic.

On a 2-core CPU the whole run (three backends, 3 repeats) takes about
ten minutes.

Usage:

    python benchmarks/structured_speedup.py
    python benchmarks/structured_speedup.py --models conv4 --backends jax --repeats 5
    python benchmarks/structured_speedup.py --json results.json
    python benchmarks/structured_speedup.py --train-batch 600 --predict-batch 6000 --scale 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

BACKENDS = ("tensorflow", "jax", "torch")
MODELS = {"lenet": 0.25, "conv4": 0.30}  # Fraction of units kept.
EXAMPLES = {"lenet": 6000, "conv4": 1200}  # Conv-4's dense epoch is slow on a CPU.
TRAIN_BATCH, PREDICT_BATCH = 60, 600
GOAL = 0.7
RESULT_PREFIX = "RESULT "


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--multiple-of", type=int, default=1,
                        help="round kept unit counts up to a multiple of this")
    parser.add_argument("--train-batch", type=int, default=TRAIN_BATCH,
                        help="training batch size (default: the paper's 60)")
    parser.add_argument("--predict-batch", type=int, default=PREDICT_BATCH)
    parser.add_argument("--scale", type=int, default=1,
                        help="time this many times the default number of inputs")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # Set in the subprocesses.
    args = parser.parse_args(argv)
    for flag in ("repeats", "multiple_of", "train_batch", "predict_batch", "scale"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1, received "
                         f"{getattr(args, flag)}")
    return args


def macs(model) -> int:
    """Multiply-accumulates per example of the Dense and convolution layers."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            total += layer.kernel.shape[0] * layer.kernel.shape[1]
        elif isinstance(layer, keras.layers.Conv2D):
            height, width = layer.output.shape[1:3]
            kh, kw, inputs, outputs = layer.kernel.shape
            total += kh * kw * inputs * outputs * height * width
    return total


def activations(model) -> int:
    """Output values per example of the Dense and convolution layers: the
    memory a step writes and reads back, which shrinks with the kept units
    alone (MACs shrink with kept inputs times kept outputs)."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D)):
            total += math.prod(layer.output.shape[1:])
    return total


def pruned(name, keep, multiple=1, seed=0):
    """(dense plain model, shrunk plain model, masked model) for `name`."""
    import numpy as np

    import keras_lottery as kl
    from keras_lottery.structured import unit_masks as structured_pruning
    from keras_lottery.structured.unit_groups import unit_groups

    model = kl.models.lenet_300_100() if name == "lenet" else kl.models.conv4()
    dense = kl.strip(model)
    rng = np.random.default_rng(seed)
    masks = kl.get_masks(model)
    kind = "neurons" if name == "lenet" else "filters"
    for group in unit_groups(model):
        if group.kind != kind or group.blocked:
            continue
        count = max(1, int(round(group.units * keep)))
        count = min(group.units, -(-count // multiple) * multiple)
        chosen = np.zeros(group.units, dtype=bool)
        chosen[rng.choice(group.units, count, replace=False)] = True
        masks = structured_pruning.remove_units(group, chosen, masks)
    kl.apply_masks(model, masks)
    return dense, kl.shrink(model), model


def median_seconds(run, repeats):
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def child(backend, models, repeats, multiple, train_batch, predict_batch, scale):
    os.environ["KERAS_BACKEND"] = backend
    import keras
    import numpy as np

    results = []
    for name in models:
        keras.utils.set_random_seed(0)
        dense, small, masked = pruned(name, MODELS[name], multiple)
        shape = (28, 28, 1) if name == "lenet" else (32, 32, 3)
        rng = np.random.default_rng(1)
        x = rng.normal(size=(EXAMPLES[name] * scale, *shape)).astype("float32")
        y = rng.integers(0, 10, len(x))
        gap = float(np.max(np.abs(small.predict(x[:600], verbose=0)
                                  - masked.predict(x[:600], verbose=0))))
        # What every model pays whatever its size: moving the inputs in, the
        # loop's steps, the loss and an update. It reads every input and
        # computes next to nothing (an average per image, then 10 outputs).
        floor = keras.Sequential([keras.Input(shape), keras.layers.GlobalAveragePooling2D(),
                                  keras.layers.Dense(10)])
        contenders = (("dense", dense), ("shrunk", small), ("floor", floor))
        timings = {}
        for label, model in contenders:
            model.compile(keras.optimizers.Adam(1e-3),
                          keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            model.fit(x, y, batch_size=train_batch, epochs=1, verbose=0)  # Warm-up.
            model.predict(x, batch_size=predict_batch, verbose=0)
        for what in ("inference", "training"):
            for label, model in contenders:
                timings[(what, label)] = []
            for _ in range(repeats):  # Alternating, so drifts hit all alike.
                for label, model in contenders:
                    if what == "inference":
                        def step(model=model):
                            model.predict(x, batch_size=predict_batch, verbose=0)
                    else:
                        def step(model=model):
                            model.fit(x, y, batch_size=train_batch, epochs=1, verbose=0)
                    timings[(what, label)].append(median_seconds(step, 1))
        ideal = macs(dense) / macs(small)
        memory = activations(dense) / activations(small)
        for what in ("inference", "training"):
            seconds = {label: statistics.median(timings[(what, label)])
                       for label, _ in contenders}
            speedup = seconds["dense"] / seconds["shrunk"]
            # The speedup of the time above the floor: the part a smaller model can cut.
            above = (seconds["dense"] - seconds["floor"]) / max(
                seconds["shrunk"] - seconds["floor"], 1e-9)
            results.append({
                "backend": backend, "model": name, "what": what, "keep": MODELS[name],
                "kept_units": [layer.units if hasattr(layer, "units") else layer.filters
                               for layer in small.layers if hasattr(layer, "kernel")][:-1],
                "dense_s": seconds["dense"], "shrunk_s": seconds["shrunk"],
                "speedup": speedup, "ideal": ideal, "share_of_ideal": speedup / ideal,
                "floor_s": seconds["floor"], "speedup_above_floor": above,
                "activation_ratio": memory,
                "params": [dense.count_params(), small.count_params()],
                "max_prediction_gap": gap, "examples": len(x),
                "train_batch": train_batch, "predict_batch": predict_batch,
            })
    print(RESULT_PREFIX + json.dumps(results), flush=True)


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        child(args.child, args.models, args.repeats, args.multiple_of, args.train_batch,
              args.predict_batch, args.scale)
        return 0
    rows = []
    for backend in args.backends:
        command = [sys.executable, __file__, "--child", backend, "--repeats", str(args.repeats),
                   "--multiple-of", str(args.multiple_of), "--train-batch",
                   str(args.train_batch), "--predict-batch", str(args.predict_batch),
                   "--scale", str(args.scale), "--models", *args.models]
        done = subprocess.run(command, capture_output=True, text=True,
                              env={**os.environ, "KERAS_BACKEND": backend})
        found = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
        if done.returncode or not found:
            print(f"{backend} failed:\n{done.stderr[-3000:]}", file=sys.stderr)
            continue
        rows += json.loads(found[-1][len(RESULT_PREFIX):])
    print(f"{'model':7} {'backend':10} {'what':9} {'dense s':>8} {'shrunk s':>8} "
          f"{'speedup':>7} {'ideal':>6} {'share':>6} {'goal':>6}  {'floor s':>8} "
          f"{'above floor':>11} {'act. ratio':>10}")
    for row in rows:
        print(f"{row['model']:7} {row['backend']:10} {row['what']:9} {row['dense_s']:8.3f} "
              f"{row['shrunk_s']:8.3f} {row['speedup']:7.2f} {row['ideal']:6.2f} "
              f"{row['share_of_ideal']:6.0%} "
              f"{'met' if row['share_of_ideal'] >= GOAL else 'missed':>6}  "
              f"{row['floor_s']:8.3f} {row['speedup_above_floor']:10.2f}x "
              f"{row['activation_ratio']:9.2f}x")
    print(f"goal: speedup >= {GOAL:.0%} of the ideal (dense MACs / shrunk MACs); floor: the "
          "same loop on a model that only averages each input; above floor: (dense - floor) / "
          "(shrunk - floor); act. ratio: dense / shrunk values output by the Dense and "
          "convolution layers")
    for row in rows:
        if row["what"] == "inference":
            print(f"{row['model']} {row['backend']}: units kept {row['kept_units']}; "
                  f"parameters {row['params'][0]:,} -> "
                  f"{row['params'][1]:,}; shrunk vs masked predictions differ by at most "
                  f"{row['max_prediction_gap']:.2e}")
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"machine": platform.processor() or platform.machine(),
                       "cpus": os.cpu_count(), "rows": rows}, file, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
