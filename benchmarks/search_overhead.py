"""Where a TicketSearch round's time goes: training, or the work around it.

Runs a LeNet-300-100 MNIST search (batch 60, Adam 1.2e-3, validation every
100 iterations, the test set at the early-stop point and the end unless
`--test-curves`; compiled as the presets compile unless `--compile keras`)
and splits each round's wall time into: pruning (computing the masks),
rewinding (restoring θ0 and writing the masks), compiling (the fresh
optimizer and the first train step's trace, measured as the first
execution's excess over the median one), evaluation, and steady training.
The share outside `fit`'s steady state is the search's own overhead.

It times private steps of TicketSearch by wrapping them where the search
calls them: a measurement, not an API. One backend per process (KERAS_BACKEND); about a
minute per backend with the defaults on a 2-core CPU.

    KERAS_BACKEND=jax python benchmarks/search_overhead.py --data path/to/data/mnist.npz
"""

import argparse
import json
import statistics
import time

import keras

import keras_lottery as kl
from keras_lottery.models import lenet_300_100
from keras_lottery.search import callbacks as search_callbacks
from keras_lottery.search import training as search_training
from vs_pytorch_loop import (  # the same data and settings
    compile_settings, load, steps_per_execution)


class Clock:
    def __init__(self):
        self.spent = {}  # total seconds per name
        self.last = {}  # seconds of the latest call per name

    def wrap(self, name, function):
        def timed(*args, **kwargs):
            began = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.last[name] = time.perf_counter() - began
                self.spent[name] = self.spent.get(name, 0.0) + self.last[name]

        return timed


class StepTimes(keras.callbacks.Callback):
    """Durations of every execution (steps_per_execution steps) of a training."""

    def on_train_begin(self, logs=None):
        self.durations = []

    def on_train_batch_begin(self, batch, logs=None):
        self._began = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.durations.append(time.perf_counter() - self._began)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="path to mnist.npz (Keras layout)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--steps-per-execution", type=int, default=100)
    parser.add_argument("--limit", type=int, default=None, help="first N training images only")
    parser.add_argument("--compile", choices=("fast", "keras"), default="fast",
                        help="fast: the presets' settings; keras: jit_compile='auto'")
    parser.add_argument("--test-curves", action="store_true",
                        help="test set at every evaluation point, not only at the best")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()


    train, validation, test = load(args.data, args.limit)
    keras.utils.set_random_seed(0)
    model = lenet_300_100(input_shape=(784,))
    model.compile(keras.optimizers.Adam(1.2e-3), "sparse_categorical_crossentropy",
                  metrics=["accuracy"], **compile_settings(args))

    steps = StepTimes()
    search = kl.TicketSearch(model, *train, rounds=args.rounds, epochs=args.epochs,
                             batch_size=60, eval_every=100, validation_data=validation,
                             test_data=test, test_curves=args.test_curves, verbose=0,
                             callbacks=[steps])
    rows = []
    clock = Clock()
    # The private steps of a round, timed where the search calls them.
    search._masks_for = clock.wrap("prune", search._masks_for)
    kl.state.restore = clock.wrap("rewind", kl.state.restore)
    search_training.apply_masks = clock.wrap("rewind", search_training.apply_masks)
    search.optimizer.reset = clock.wrap("compile", search.optimizer.reset)
    search.model.compile_from_config = clock.wrap("compile", search.model.compile_from_config)
    search_callbacks.evaluate = clock.wrap("evaluate", search_callbacks.evaluate)
    original_train = search._train_ticket

    def train(*a, **k):
        before, began = dict(clock.spent), time.perf_counter()
        record = original_train(*a, **k)
        wall = time.perf_counter() - began
        spent = {n: clock.spent.get(n, 0.0) - before.get(n, 0.0) for n in clock.spent}
        typical = statistics.median(steps.durations[1:] or steps.durations)
        trace = max(0.0, steps.durations[0] - typical)
        # Pruning runs just before `_train_ticket`, when the round's masks are computed.
        prune = clock.last.pop("prune", 0.0)
        row = {"round": record.round, "wall": wall + prune, "prune": prune,
               "rewind": spent.get("rewind", 0.0), "compile": spent.get("compile", 0.0),
               "first_step_trace": trace, "evaluate": spent.get("evaluate", 0.0)}
        row["steady_training"] = (sum(steps.durations) - trace)
        row["outside_fit_share"] = (row["prune"] + row["rewind"] + row["compile"] + trace) / row["wall"]
        rows.append(row)
        return record

    search._train_ticket = train
    search.run()
    print(f"backend {keras.backend.backend()}, steps_per_execution {steps_per_execution(args)}, "
          f"jit_compile {model.jit_compile}, test_curves {args.test_curves}")
    columns = ["round", "wall", "prune", "rewind", "compile", "first_step_trace", "evaluate",
               "steady_training", "outside_fit_share"]
    print(" ".join(f"{c:>17}" for c in columns))
    for row in rows:
        print(" ".join(f"{row[c]:>17.3f}" if isinstance(row[c], float) else f"{row[c]:>17}"
                       for c in columns))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"backend": keras.backend.backend(), "settings": vars(args), "rounds": rows},
                      f, indent=1)


if __name__ == "__main__":
    main()
