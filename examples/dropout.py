"""Winning tickets with and without dropout, Conv-2/4/6 (the paper's Figure 6).

Two searches of the same network: the paper's plain preset and its dropout
preset (rate 0.5 after the hidden dense layers, its own learning rate). The
figure compares accuracy at early stop and early-stop iteration against Pm.
Offline without CIFAR-10, `--dataset fashion_mnist`.

Conv-2 with --iterations 2000 --rounds 5 takes about 25 minutes on a 2-core
CPU with JAX.

    KERAS_BACKEND=jax python examples/dropout.py --network conv2 --dataset fashion_mnist \
        --data-dir path/to/data --iterations 2000 --rounds 5
"""

import argparse
import pathlib

import keras_lottery as kl


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--network", choices=["conv2", "conv4", "conv6"], default="conv2")
    parser.add_argument("--dataset", choices=["cifar10", "fashion_mnist"], default="cifar10")
    parser.add_argument("--data-dir")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--limit", type=int, default=None, help="first N training images")
    parser.add_argument("--out", default="runs/dropout")
    args = parser.parse_args()

    out = pathlib.Path(args.out)
    results = {}
    for label, preset in [("no dropout", f"{args.network}_cifar10"),
                          ("dropout 0.5", f"{args.network}_cifar10_dropout")]:
        results[label] = kl.TicketSearch.from_preset(
            preset, dataset=args.dataset, data_dir=args.data_dir, limit=args.limit, rounds=args.rounds,
            iterations=args.iterations, directory=out / preset, verbose=0).run()
        print(f"{label}\n{results[label].summary()}\n")
    for path in kl.plots.save_figures(results, out / "figures"):
        print("wrote", path)


if __name__ == "__main__":
    main()
