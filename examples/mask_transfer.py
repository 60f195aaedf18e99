"""Mask transfer: LeNet-300-100 tickets found on MNIST, trained on Fashion-MNIST.

Chen et al. (2020) carried masks from one task to others and compared them
with random masks of the same densities; Morcos et al. (2019) did the same
across image data sets. This example:

1. finds tickets on MNIST (the `lenet_300_100_mnist` preset, iterative);
2. trains each round's MNIST ticket on Fashion-MNIST (`transfer=`): its
   mask on the θ0 it was found at (the same preset and seed build the same
   initialization, checked below), beside random masks of the same
   per-layer densities on that θ0 (`random_pruning`) and the MNIST mask on
   another initialization (`random_reinit`);
3. finds Fashion-MNIST's own tickets with the same settings, for reference.

It writes `table.md` (Fashion-MNIST test accuracy at the early-stop
iteration, per density) into --out. Both data sets come from --data-dir
(`mnist.npz`, `fashion-mnist/`), KERAS_LOTTERY_DATA, or tfds.

About 10 minutes with JAX on a 2-core CPU at the defaults:

    KERAS_BACKEND=jax python examples/mask_transfer.py --data-dir path/to/data
"""

import argparse
import pathlib

import numpy as np

import keras_lottery as kl
from keras_lottery.search.run_directory import RunDirectory, load_masks


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", help="local copies of the data sets")
    parser.add_argument("--rounds", type=int, default=10, help="pruned rounds (20%% a round)")
    parser.add_argument("--iterations", type=int, default=5000,
                        help="per training, rounded up to whole epochs (the paper: 50,000)")
    parser.add_argument("--out", default="runs/mask_transfer")
    args = parser.parse_args()

    out = pathlib.Path(args.out)
    common = dict(data_dir=args.data_dir, rounds=args.rounds, iterations=args.iterations)
    kl.TicketSearch.from_preset("lenet_300_100_mnist", directory=out / "mnist", **common).run()
    own = kl.TicketSearch.from_preset(
        "lenet_300_100_mnist", dataset="fashion_mnist", controls=["random_pruning"],
        directory=out / "fashion_mnist", **common).run()
    found = load_masks(out / "mnist")
    transferred = kl.TicketSearch.from_preset(
        "lenet_300_100_mnist", dataset="fashion_mnist",
        transfer=[found[r] for r in range(1, args.rounds + 1)],
        controls=["random_pruning", "random_reinit"], directory=out / "mnist_masks_on_fashion",
        data_dir=args.data_dir, iterations=args.iterations).run()
    same = _same_theta0(out / "mnist", out / "mnist_masks_on_fashion")
    print(f"the transferred masks train from the θ0 they were found at: {same}")
    table = markdown_table(own, transferred)
    (out / "table.md").write_text(table)
    print(table)


def _same_theta0(a, b):
    first, second = (RunDirectory(d).read_arrays("theta0.npz") for d in (a, b))
    return first.keys() == second.keys() and all(
        np.array_equal(first[k], second[k]) for k in first)


def markdown_table(own, transferred):
    def accuracy(record):
        return f"{record.early_stop.get('test_accuracy', record.final['test_accuracy']):.2%}"

    lines = [
        "Fashion-MNIST test accuracy at the early-stop iteration:", "",
        "| round | density | Fashion-MNIST's own ticket | random masks (own densities) | "
        "MNIST ticket (mask and θ0) | random masks (its densities) | MNIST mask, reinitialized |",
        "|" + " --- |" * 7,
    ]
    for ticket in own.tickets():
        r = ticket.round
        if r == 0:
            cells = [accuracy(ticket), "-", accuracy(transferred.record(0)), "-", "-"]
        else:
            cells = [accuracy(ticket), accuracy(own.record(r, "random_pruning")),
                     accuracy(transferred.record(r)),
                     accuracy(transferred.record(r, "random_pruning")),
                     accuracy(transferred.record(r, "random_reinit"))]
        lines.append(f"| {r} | {ticket.density:.1%} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
