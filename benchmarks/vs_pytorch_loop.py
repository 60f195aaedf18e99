"""Lottery-ticket rounds: TicketSearch on each Keras backend vs a plain PyTorch loop.

The same work on every side: LeNet-300-100 on MNIST (55,000 training images,
5,000 held out), batch 60, Adam 1.2e-3, `--rounds` pruned rounds after the
dense one (fc 20%, output 10% per round, rewound to θ0, fresh optimizer),
`--epochs` epochs per round, validation accuracy every 100 iterations and
test accuracy where the paper reports it (at the best validation point and
at the end; `--test-curves`: at every point too). The PyTorch loop multiplies
the masks into the weights before every step, the way open_lth does, and
keeps a copy of the weights at the best validation point as TicketSearch
does. TicketSearch trains through `model.fit`, compiled as the presets
compile (`--compile fast`, the default: `keras_lottery.fast_compile_settings`,
XLA on TensorFlow, `torch.compile` on torch) or with Keras' defaults
(`--compile keras`: `jit_compile="auto"`), `steps_per_execution` 100 where
the backend allows it.

Each side runs in its own process (the Keras backend is fixed at import) and
prints one JSON line; the parent prints seconds per round and the ratios.
About 5 minutes for the default settings on a 2-core CPU.

    python benchmarks/vs_pytorch_loop.py --data path/to/data/mnist.npz
    python benchmarks/vs_pytorch_loop.py --data mnist.npz --sides jax torch_loop --rounds 1
    python benchmarks/vs_pytorch_loop.py --data mnist.npz --compile keras --test-curves
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SIDES = ("tensorflow", "jax", "torch", "torch_loop")
RESULT = "RESULT "


def load(path, limit=None):
    import numpy as np

    with np.load(path) as data:
        x, y, xt, yt = data["x_train"], data["y_train"], data["x_test"], data["y_test"]
    flat = lambda a: (a.reshape(len(a), -1) / 255.0).astype("float32")  # noqa: E731
    train = (flat(x[5000:]), y[5000:].astype("int64"))
    if limit:
        train = (train[0][:limit], train[1][:limit])
    return train, (flat(x[:5000]), y[:5000].astype("int64")), (flat(xt), yt.astype("int64"))


def steps_per_execution(args):
    import keras

    # Keras' torch trainer runs one step per execution only.
    return 1 if keras.backend.backend() == "torch" else args.steps_per_execution


def compile_settings(args):
    """`model.compile` settings: the presets' (`--compile fast`) or Keras' defaults."""
    import keras_lottery as kl

    settings = {"steps_per_execution": steps_per_execution(args), "jit_compile": "auto"}
    if args.compile == "fast":
        settings["jit_compile"] = kl.fast_compile_settings(100)["jit_compile"]
    return settings


def keras_side(args):
    import keras

    import keras_lottery as kl
    from keras_lottery.models import lenet_300_100

    train, validation, test = load(args.data, args.limit)
    keras.utils.set_random_seed(0)
    model = lenet_300_100(input_shape=(784,))
    model.compile(keras.optimizers.Adam(1.2e-3), "sparse_categorical_crossentropy",
                  metrics=["accuracy"], **compile_settings(args))
    search = kl.TicketSearch(model, *train, rounds=args.rounds, epochs=args.epochs,
                             batch_size=60, eval_every=100, validation_data=validation,
                             test_data=test, test_curves=args.test_curves, verbose=0)
    began = time.perf_counter()
    result = search.run()
    total = time.perf_counter() - began
    return {"total": total, "rounds": [r.wall_time for r in result.tickets()],
            "test_accuracy": [r.final["test_accuracy"] for r in result.tickets()],
            "early_stop_test_accuracy": [r.early_stop["test_accuracy"]
                                         for r in result.tickets()],
            "jit_compile": bool(model.jit_compile),
            "density": [r.density for r in result.tickets()]}


def torch_loop(args):
    import numpy as np
    import torch
    from torch import nn

    torch.manual_seed(0)
    train, validation, test = (tuple(torch.from_numpy(a) for a in split)
                               for split in load(args.data, args.limit))
    model = nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(),
                          nn.Linear(100, 10))
    weights = [model[0].weight, model[2].weight, model[4].weight]
    rates = [0.2, 0.2, 0.1]
    for w in weights:
        nn.init.xavier_normal_(w)
    theta0 = {k: v.clone() for k, v in model.state_dict().items()}
    masks = [torch.ones_like(w) for w in weights]
    generator = torch.Generator().manual_seed(0)

    def accuracy(x, y):
        with torch.no_grad():
            return float((model(x).argmax(1) == y).float().mean())

    rounds, accuracies, early, densities = [], [], [], []
    began = time.perf_counter()
    for r in range(args.rounds + 1):
        start = time.perf_counter()
        if r:
            with torch.no_grad():
                for i, (w, rate) in enumerate(zip(weights, rates)):
                    keep = max(1, int(w.numel() * (1 - rate) ** r + 0.5))
                    scores = torch.where(masks[i] > 0, w.abs(), torch.full_like(w, -1.0))
                    kept = torch.topk(scores.flatten(), keep).indices
                    masks[i] = torch.zeros(w.numel()).index_fill_(0, kept, 1.0).view_as(w)
            model.load_state_dict(theta0)
        optimizer = torch.optim.Adam(model.parameters(), lr=1.2e-3)
        x, y = train
        iteration, best, best_state = 0, -1.0, None
        for _ in range(args.epochs):
            order = torch.randperm(len(x), generator=generator)
            for begin in range(0, len(x), 60):
                batch = order[begin:begin + 60]
                with torch.no_grad():  # open_lth: re-apply the masks before each step
                    for w, m in zip(weights, masks):
                        w.mul_(m)
                loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                iteration += 1
                if iteration % 100 == 0:
                    if args.test_curves:
                        accuracy(*test)
                    current = accuracy(*validation)
                    if current > best:  # Kept for the test set at the best point.
                        best = current
                        best_state = {k: v.clone() for k, v in model.state_dict().items()}
        with torch.no_grad():
            for w, m in zip(weights, masks):
                w.mul_(m)
        accuracies.append(accuracy(*test))
        if best_state is not None:
            final_state = {k: v.clone() for k, v in model.state_dict().items()}
            model.load_state_dict(best_state)
            early.append(accuracy(*test))
            model.load_state_dict(final_state)
        densities.append(float(sum(m.sum() for m in masks) / sum(m.numel() for m in masks)))
        rounds.append(time.perf_counter() - start)
    return {"total": time.perf_counter() - began, "rounds": rounds,
            "test_accuracy": accuracies, "early_stop_test_accuracy": early,
            "density": densities,
            "torch_threads": torch.get_num_threads(), "numpy": np.__version__}


def run_side(side, args):
    env = dict(os.environ)
    if side != "torch_loop":
        env["KERAS_BACKEND"] = side
    command = [sys.executable, __file__, "--child", side, "--data", args.data,
               "--rounds", str(args.rounds), "--epochs", str(args.epochs),
               "--steps-per-execution", str(args.steps_per_execution),
               "--compile", args.compile] + (["--test-curves"] if args.test_curves else [])
    if args.limit:
        command += ["--limit", str(args.limit)]
    out = subprocess.run(command, env=env, capture_output=True, text=True)
    if out.returncode:
        sys.stderr.write(out.stderr[-4000:])
        raise SystemExit(f"{side} failed")
    line = next(l for l in out.stdout.splitlines() if l.startswith(RESULT))
    return json.loads(line[len(RESULT):])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="path to mnist.npz (Keras layout)")
    parser.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    parser.add_argument("--rounds", type=int, default=2, help="pruned rounds after the dense one")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per round")
    parser.add_argument("--steps-per-execution", type=int, default=100)
    parser.add_argument("--compile", choices=("fast", "keras"), default="fast",
                        help="fast: the presets' settings; keras: jit_compile='auto'")
    parser.add_argument("--test-curves", action="store_true",
                        help="test accuracy at every evaluation point, not only at the best")
    parser.add_argument("--limit", type=int, default=None, help="first N training images only")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure = torch_loop if args.child == "torch_loop" else keras_side
        print(RESULT + json.dumps(measure(args)))
        return

    results = {side: run_side(side, args) for side in args.sides}
    # Rounds after the first: round 0 also pays the one-time compilation,
    # shown apart (torch.compile's is large, and paid once per search).
    per_round = {side: statistics.median(r["rounds"][1:] or r["rounds"])
                 for side, r in results.items()}
    print(f"{'side':<12} {'round 0 s':>9} {'later s/round (median)':>22} {'total s':>8} "
          f"{'vs jax':>7} {'torch loop / this':>17}  test accuracy per round")
    for side, r in results.items():
        vs_jax = per_round[side] / per_round["jax"] if "jax" in per_round else float("nan")
        speedup = (per_round["torch_loop"] / per_round[side]
                   if "torch_loop" in per_round else float("nan"))
        accuracies = " ".join(f"{a:.4f}" for a in r["test_accuracy"])
        print(f"{side:<12} {r['rounds'][0]:>9.2f} {per_round[side]:>22.2f} {r['total']:>8.1f} "
              f"{vs_jax:>7.2f} {speedup:>17.2f}  {accuracies}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": vars(args), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
