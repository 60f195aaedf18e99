"""VGG-19 or ResNet-18 on CIFAR-10, with and without learning-rate warmup (Figures 7, 8).

The paper: at learning rate 0.1, iterative global pruning finds no winning
tickets for these networks; with linear warmup (VGG-19: to 0.1 over 10K
iterations, ResNet-18: to 0.03 over 20K) it does. Both presets of the chosen
network run side by side; `--iterations` scales the whole schedule (warmup
and decay points) down for a shorter run.

A real reproduction needs a GPU (VGG-19: 112K iterations a round). On a CPU,
ResNet-18 with --iterations 1000 --rounds 3 --limit 10000 takes about an hour.

    KERAS_BACKEND=jax python examples/warmup_deep_nets.py --network resnet18 \
        --iterations 1000 --rounds 3 --limit 10000
"""

import argparse
import pathlib

import keras_lottery as kl
from keras_lottery import presets


def scaled(name, iterations):
    """The preset with its schedule shrunk to `iterations` (None: as in the paper)."""
    preset = presets.get(name)
    if iterations is None:
        return {}
    factor = iterations / preset.iterations
    return {"iterations": iterations,
            "warmup_steps": max(1, round(preset.warmup_steps * factor)) if preset.warmup_steps else 0,
            "decay_at": tuple(max(1, round(b * factor)) for b in preset.decay_at)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--network", choices=["vgg19", "resnet18"], default="resnet18")
    parser.add_argument("--data-dir")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--limit", type=int, default=None, help="first N training images")
    parser.add_argument("--out", default="runs/warmup")
    args = parser.parse_args()

    out = pathlib.Path(args.out)
    results = {}
    for label, name in [("warmup", f"{args.network}_cifar10"),
                        ("no warmup", f"{args.network}_cifar10_no_warmup")]:
        results[label] = kl.TicketSearch.from_preset(
            name, data_dir=args.data_dir, rounds=args.rounds, limit=args.limit,
            controls=["random_reinit"], directory=out / name, **scaled(name, args.iterations)).run()
        print(f"{label}\n{results[label].summary()}\n")
    for path in kl.plots.save_figures(results, out / "figures"):
        print("wrote", path)


if __name__ == "__main__":
    main()
