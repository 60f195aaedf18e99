"""How much slower training gets when a model's layers are masked.

Trains each model twice per backend: once built from plain Keras layers, once
with masked layers pruned to 50% density (`magnitude_prune(rate=0.5)` on
every prunable weight). The models (`--models`):

- `lenet`: LeNet-300-100 (Flatten 28x28 -> Dense 300 relu -> Dense 100 relu
  -> Dense 10 softmax, Glorot-normal init) on MNIST (`--data`), 60,000 images;
  the masked model is `keras_lottery.prunable()` of the plain one.
- `transformer`: `keras_lottery.models.causal_transformer` (token and position
  embeddings, 2 pre-LayerNorm blocks of causal 4-head attention, width 64,
  feed-forward 256) on 6,000 random sequences of 64 tokens from 128 ids;
- `lstm`: `keras_lottery.models.lstm_classifier` (embedding 32, two LSTMs of
  128 units) on 6,000 random sequences of 32 tokens;
- `transformer_lm`: `keras_lottery.models.transformer_lm` at its preset size
  (width 128, 4 heads, feed-forward 512, 2 blocks, a 155-token vocabulary as
  the Jargon File's) on 6,000 random windows of 64 tokens, predicting each
  next token (loss from logits);
  for these three the plain model is `keras_lottery.strip()` of the masked one
  before pruning, so both start from the same weights;
- `bert`: a KerasHub `BertTextClassifier` (2 layers, width 128, 4 heads,
  feed-forward 512, 1,000 word pieces, 64 tokens, 2 classes; the `hub`
  extra) on 6,000 random sequences; the masked model is the plain one's copy
  masked in place (`prunable(copy, in_place=True)`), every kernel and
  embedding table masked.

All use batch 60, Adam(1.2e-3) and sparse categorical cross-entropy. After a
warm-up fit that excludes compilation and tracing, it times one epoch per
model, alternating plain and masked for `--repeats` epochs each, and reports
the median seconds per epoch and the ratio masked / plain (the target is
<= 1.05).

The backend is fixed when Keras is first imported, so the script runs one
subprocess per backend (KERAS_BACKEND set); each measures both models in the
same process and prints one JSON line, and the parent prints a table. No
metrics are compiled, so the ratio is not diluted by metric updates.

On a 2-core CPU without GPU a LeNet epoch takes about 0.5 s (JAX) to 2.5 s
(TensorFlow, PyTorch); `--models lenet` with three backends and 3 repeats
takes about one minute; `--models transformer_lm` about ten minutes.

Usage:

    python benchmarks/masking_overhead.py --data /path/to/mnist.npz
    python benchmarks/masking_overhead.py --models transformer lstm transformer_lm  # no data
    python benchmarks/masking_overhead.py --data mnist.npz --backends jax \\
        --repeats 5 --steps-per-execution 10 --threads 1 --json results.json
    python benchmarks/masking_overhead.py --data mnist.npz --limit 6000  # smoke run
    python benchmarks/masking_overhead.py --data mnist.npz --models lenet bert \
        --preset-settings  # the presets' compile settings, as the search trains

`--steps-per-execution` above 1 skips PyTorch, whose Keras backend refuses it.
`--preset-settings` compiles as the presets do, `keras_lottery.fast_compile_settings(
eval_every=100)` on each backend (XLA, torch.compile; 100 steps per execution on
TensorFlow and JAX), and replaces `--jit-compile` and `--steps-per-execution`.

`mnist.npz` is in Keras' layout: `x_train` uint8 (60000, 28, 28), `y_train`,
`x_test`, `y_test`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Any

BACKENDS = ("tensorflow", "jax", "torch")
MODELS = ("lenet", "transformer", "lstm", "transformer_lm", "bert")
SEQUENCES = 6000  # Examples of the random token data for the sequence models.
BATCH_SIZE = 60
LEARNING_RATE = 1.2e-3
PRUNE_RATE = 0.5
TARGET_RATIO = 1.05
RESULT_PREFIX = "RESULT "


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time one training epoch of LeNet-300-100, plain vs masked."
    )
    parser.add_argument("--data", help="path to mnist.npz (needed for the lenet model)")
    parser.add_argument(
        "--models", nargs="+", choices=MODELS, default=list(MODELS),
        help="models to measure (default: all)",
    )
    parser.add_argument(
        "--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS),
        help="backends to measure, one subprocess each (default: all three)",
    )
    parser.add_argument(
        "--repeats", type=int, default=3,
        help="timed epochs per model, alternating plain and masked (default: 3)",
    )
    parser.add_argument(
        "--warmup-steps", type=int, default=300,
        help="training steps of the untimed warm-up fit per model (default: 300)",
    )
    parser.add_argument(
        "--steps-per-execution", type=int, default=1,
        help="passed to model.compile() (default: 1)",
    )
    parser.add_argument(
        "--jit-compile", choices=("auto", "true", "false"), default="auto",
        help="passed to model.compile(): XLA on TensorFlow, torch.compile on PyTorch "
        "(JAX always compiles; default: auto, Keras' own choice)",
    )
    parser.add_argument(
        "--preset-settings", action="store_true",
        help="compile as the presets do: keras_lottery.fast_compile_settings(eval_every=100)",
    )
    parser.add_argument(
        "--after-step", action="store_true",
        help="lenet only: also time a third model, plain layers whose kernels are masked "
        "once per step after the optimizer's update (a constant-mask kernel constraint), "
        "the alternative to masking in the forward pass",
    )
    parser.add_argument(
        "--limit", type=int, default=None,
        help="use only the first N training examples (for a quick smoke run)",
    )
    parser.add_argument(
        "--threads", type=int, default=None,
        help="pin each backend process to this many CPUs (Linux) and size the "
        "thread pools to match (default: the libraries' own defaults)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for both models")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    # Internal: set in the per-backend subprocess.
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    counts = [args.repeats, args.warmup_steps, args.steps_per_execution]
    if min(counts + ([args.threads] if args.threads is not None else [])) < 1:
        parser.error("--repeats, --warmup-steps, --steps-per-execution and --threads must be >= 1")
    if args.limit is not None and args.limit < BATCH_SIZE:
        parser.error(f"--limit must be at least the batch size, {BATCH_SIZE}")
    if "lenet" in args.models and not args.data:
        parser.error("--data (mnist.npz) is needed for the lenet model; or pass "
                     "--models transformer lstm transformer_lm")
    return args


# ---------------------------------------------------------------- worker side


def build_lenet(seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    dense = dict(kernel_initializer="glorot_normal")
    return keras.Sequential(
        [
            keras.Input((28, 28)),
            keras.layers.Flatten(),
            keras.layers.Dense(300, activation="relu", **dense),
            keras.layers.Dense(100, activation="relu", **dense),
            keras.layers.Dense(10, activation="softmax", **dense),
        ],
        name="lenet_300_100",
    )


def compile_model(model, steps_per_execution: int, jit_compile: str = "auto",
                  from_logits: bool = False, preset_settings: bool = False) -> None:
    import keras

    import keras_lottery

    settings = (keras_lottery.fast_compile_settings(eval_every=100) if preset_settings else
                dict(steps_per_execution=steps_per_execution,
                     jit_compile={"auto": "auto", "true": True, "false": False}[jit_compile]))
    model.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
        **settings,
    )


def limit_threads(threads: int) -> None:
    """Pins this process to `threads` CPUs; call before Keras is imported.

    TensorFlow, XLA and OpenMP (PyTorch) size their thread pools from the
    CPUs the process may run on.
    """
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:threads])


def time_epoch(model, x, y) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one `fit()` epoch over `x`."""
    start, start_cpu = time.perf_counter(), time.process_time()
    model.fit(x, y, batch_size=BATCH_SIZE, epochs=1, verbose=0, shuffle=False)
    return time.perf_counter() - start, time.process_time() - start_cpu


def backend_version(backend: str) -> str:
    """Version of the library behind a Keras backend (its module has the same name)."""
    return importlib.import_module(backend).__version__


def after_step_model(seed: int, masks):
    """Plain LeNet whose kernels are multiplied by their masks after each update.

    A kernel constraint with the mask as a constant: the forward pass reads
    the stored (already masked) kernel, and pruned weights get a nonzero
    gradient that the constraint discards. For measurement only: on JAX a
    constraint cannot read a mask variable, so a new mask means a new trace.
    """
    import keras
    import numpy as np

    model = build_lenet(seed)
    kernels = [layer for layer in model.layers if hasattr(layer, "kernel")]
    assert len(kernels) == len(masks), (len(kernels), list(masks))
    for layer, mask in zip(kernels, masks.values()):  # Both in layer order.
        mask = np.asarray(mask, dtype="float32")
        assert mask.shape == tuple(layer.kernel.shape), (mask.shape, layer.kernel.shape)
        layer.kernel.constraint = lambda w, m=mask: w * keras.ops.convert_to_tensor(m)
        layer.kernel.assign(keras.ops.convert_to_numpy(layer.kernel) * mask)
    return model


SEQUENCE_SHAPES = {  # builder keyword arguments
    "transformer": dict(vocab_size=128, sequence_length=64, num_classes=10, embed_dim=64,
                        num_heads=4, ff_dim=256, num_blocks=2),
    "lstm": dict(vocab_size=128, sequence_length=32, num_classes=10, embed_dim=32, units=128),
    "transformer_lm": dict(vocab_size=155, sequence_length=64),  # The builder's other defaults.
    "bert": dict(vocab_size=1000, sequence_length=64, num_classes=2),
}


def build_bert(seed: int):
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)
    shape = SEQUENCE_SHAPES["bert"]
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=shape["vocab_size"], num_layers=2, num_heads=4, hidden_dim=128,
        intermediate_dim=512, max_sequence_length=shape["sequence_length"])
    return keras_hub.models.BertTextClassifier(backbone, num_classes=shape["num_classes"],
                                               preprocessor=None)


def build_models(name: str, args: argparse.Namespace):
    """`(plain, masked, x, y)` for model `name`; `masked` is not pruned yet."""
    import keras
    import numpy as np

    import keras_lottery

    if name == "lenet":
        with np.load(args.data) as data:
            x = data["x_train"][: args.limit].astype("float32") / 255.0
            y = data["y_train"][: args.limit].astype("int32")
        return build_lenet(args.seed), keras_lottery.prunable(build_lenet(args.seed)), x, y
    shape = SEQUENCE_SHAPES[name]
    rng = np.random.default_rng(args.seed)
    count = args.limit or SEQUENCES
    x = rng.integers(0, shape["vocab_size"], (count, shape["sequence_length"])).astype("int32")
    if name == "transformer_lm":  # Next-token targets, one per position.
        y = np.roll(x, -1, axis=1)
    else:
        y = (x[:, 0] % shape["num_classes"]).astype("int32")
    if name == "bert":
        x = {"token_ids": x, "segment_ids": np.zeros_like(x),
             "padding_mask": np.ones_like(x)}
        plain, masked = build_bert(args.seed), build_bert(args.seed)
        masked.set_weights(plain.get_weights())
        return plain, keras_lottery.prunable(masked, in_place=True), x, y
    keras.utils.set_random_seed(args.seed)
    builder = {"transformer": keras_lottery.models.causal_transformer,
               "lstm": keras_lottery.models.lstm_classifier,
               "transformer_lm": keras_lottery.models.transformer_lm}[name]
    masked = builder(**shape)
    return keras_lottery.strip(masked), masked, x, y


def measure(args: argparse.Namespace, model_name: str) -> dict[str, Any]:
    """Measures the plain and masked `model_name` models in this process's backend."""
    import keras
    import numpy as np

    import keras_lottery

    plain, masked, x, y = build_models(model_name, args)
    masks = keras_lottery.magnitude_prune(keras_lottery.get_weights(masked), rate=PRUNE_RATE)
    keras_lottery.apply_masks(masked, masks)
    density = keras_lottery.sparsity_report(masked).density
    assert abs(density - (1 - PRUNE_RATE)) < 1e-3, f"masked model density {density}"
    assert not keras_lottery.masked_layers(plain), "the plain model has masked layers"

    models = {"plain": plain, "masked": masked}
    if args.after_step and model_name == "lenet":
        models["after_step"] = after_step_model(args.seed, masks)
    for model in models.values():
        compile_model(model, args.steps_per_execution, args.jit_compile,
                      from_logits=model_name in ("transformer_lm", "bert"),
                      preset_settings=args.preset_settings)
    # The warm-up ends with the same partial batch as the timed epoch, so
    # every shape the epoch sees is traced before timing. Its time, less
    # the same steps at the timed speed, is what compiling cost.
    warmup = min(len(y), args.warmup_steps * BATCH_SIZE + len(y) % BATCH_SIZE)
    first = keras.tree.map_structure(lambda a: a[:warmup], x)  # x may be a dict (bert)
    warmup_s = {name: time_epoch(model, first, y[:warmup])[0]
                for name, model in models.items()}

    times: dict[str, list[float]] = {name: [] for name in models}
    cpu_times: dict[str, list[float]] = {name: [] for name in models}
    for repeat in range(args.repeats):
        # Alternate which model goes first so drift hits both alike.
        order = list(models) if repeat % 2 == 0 else list(models)[::-1]
        for name in order:
            wall, cpu = time_epoch(models[name], x, y)
            times[name].append(wall)
            cpu_times[name].append(cpu)

    plain_s = statistics.median(times["plain"])
    masked_s = statistics.median(times["masked"])
    return {
        "backend": keras.backend.backend(),
        "model": model_name,
        "versions": {
            "python": platform.python_version(),
            "keras": keras.__version__,
            "numpy": np.__version__,
            keras.backend.backend(): backend_version(keras.backend.backend()),
        },
        "examples": len(y),
        "steps_per_epoch": -(-len(y) // BATCH_SIZE),
        "masked_density": density,
        "plain_s": times["plain"],
        "masked_s": times["masked"],
        "plain_cpu_s": cpu_times["plain"],
        "masked_cpu_s": cpu_times["masked"],
        "plain_median_s": plain_s,
        "masked_median_s": masked_s,
        "ratio": masked_s / plain_s,
        "pair_ratios": [m / p for m, p in zip(times["masked"], times["plain"])],
        **({"after_step_s": times["after_step"],
            "after_step_ratio": statistics.median(times["after_step"]) / plain_s}
           if "after_step" in times else {}),
        "jit_compile": bool(masked.jit_compile),
        "compile_s": {name: warmup_s[name] - warmup / len(y) * statistics.median(times[name])
                      for name in models},
    }


# ---------------------------------------------------------------- parent side


def run_backend(backend: str, argv: list[str], models: list[str]) -> list[dict[str, Any]]:
    """Runs this script as a worker under `backend`; one result per model."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    command = [sys.executable, os.path.abspath(__file__), *argv, "--worker"]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    results = [json.loads(line[len(RESULT_PREFIX):]) for line in done.stdout.splitlines()
               if line.startswith(RESULT_PREFIX)]
    if done.returncode:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
        measured = {r["model"] for r in results}
        results += [{"backend": backend, "model": m, "error": f"exit code {done.returncode}:\n{tail}"}
                    for m in models if m not in measured]
    return results


def format_table(results: list[dict[str, Any]]) -> str:
    # CPU seconds too: on a shared VM a process can wait with nothing to do
    # (TensorFlow's epochs there take 1x or 2x their CPU time, by turns).
    # The best epochs' ratio too: interference from the VM's neighbours only
    # ever slows an epoch down, so the fastest of each is the least disturbed.
    header = ("model", "backend", "plain s/epoch", "masked s/epoch", "ratio", "pair ratios",
              "best ratio", "cpu ratio", f"<= {TARGET_RATIO}", "compile s")
    rows = []
    for r in results:
        if "error" in r or "skipped" in r:
            rows.append((r["model"], r["backend"], "error" if "error" in r else "skipped",
                         "", "", "", "", "", "", ""))
            continue
        pairs = r["pair_ratios"]
        cpu = statistics.median(r["masked_cpu_s"]) / statistics.median(r["plain_cpu_s"])
        after = f" (after-step {r['after_step_ratio']:.3f})" if "after_step_ratio" in r else ""
        rows.append((
            r["model"],
            r["backend"],
            f"{r['plain_median_s']:.2f}",
            f"{r['masked_median_s']:.2f}",
            f"{r['ratio']:.3f}{after}",
            f"{min(pairs):.3f}-{max(pairs):.3f}",
            f"{min(r['masked_s']) / min(r['plain_s']):.3f}",
            f"{cpu:.3f}",
            "yes" if r["ratio"] <= TARGET_RATIO else "no",
            f"{r['compile_s']['masked']:.1f}",
        ))
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.worker:
        if args.threads:
            limit_threads(args.threads)  # Before Keras is imported.
        for name in args.models:
            print(RESULT_PREFIX + json.dumps(measure(args, name)), flush=True)
        return 0

    worker_argv = [a for a in argv if a != "--worker"]
    results = []
    for backend in args.backends:
        if backend == "torch" and args.steps_per_execution > 1:
            reason = "Keras' PyTorch backend requires steps_per_execution=1"
            results += [{"backend": backend, "model": m, "skipped": reason} for m in args.models]
            continue
        print(f"measuring {backend} ...", file=sys.stderr, flush=True)
        results += run_backend(backend, worker_argv, args.models)
    print(format_table(results))
    versions: dict[str, str] = {}
    for r in results:
        versions.update(r.get("versions", {}))
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    for r in results:
        if "skipped" in r:
            print(f"{r['model']} on {r['backend']} skipped: {r['skipped']}")
        if "error" in r:
            print(f"\n{r['model']} on {r['backend']} failed, {r['error']}", file=sys.stderr)

    if args.json:
        report = {
            "machine": {
                "platform": platform.platform(),
                "processor": platform.processor() or platform.machine(),
                "cpu_count": os.cpu_count(),
            },
            "versions": versions,
            "config": {
                "batch_size": BATCH_SIZE,
                "learning_rate": LEARNING_RATE,
                "prune_rate": PRUNE_RATE,
                "models": args.models,
                "sequence_shapes": SEQUENCE_SHAPES,
                "repeats": args.repeats,
                "warmup_steps": args.warmup_steps,
                "steps_per_execution": args.steps_per_execution,
                "jit_compile": args.jit_compile,
                "limit": args.limit,
                "threads": args.threads,
                "seed": args.seed,
            },
            "results": results,
        }
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
