"""LeNet-300-100 on MNIST: winning tickets against random reinitialization (Figures 1-3).

The paper's setting (the `lenet_300_100_mnist` preset: Adam 1.2e-3, batch
60, fc layers pruned 20% per round and the output layer 10%, rewound to θ0,
5,000 training images held out for the early-stop criterion, evaluated every
100 iterations), on a schedule you choose. Prints one line per training and
a table, writes the SearchResult (JSON, CSV) and the figures to --out.

With --iterations 2751 (3 epochs) and --rounds 8, about 75 seconds on a
2-core CPU with JAX; the paper's 50K iterations and 15 rounds take about
an hour there.

    KERAS_BACKEND=jax python examples/lenet_mnist.py --data-dir path/to/data \
        --rounds 8 --iterations 2751 --out runs/lenet_mnist
"""

import argparse
import pathlib

import keras_lottery as kl


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", help="folder holding mnist.npz (else KERAS_LOTTERY_DATA, tfds)")
    parser.add_argument("--rounds", type=int, default=15, help="pruned rounds after the dense one")
    parser.add_argument("--iterations", type=int, default=50_000, help="iterations per round")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/lenet_mnist", help="run directory (resumable)")
    args = parser.parse_args()

    out = pathlib.Path(args.out)
    search = kl.TicketSearch.from_preset(
        "lenet_300_100_mnist", data_dir=args.data_dir, rounds=args.rounds,
        iterations=args.iterations, controls=["random_reinit"], directory=out, seed=args.seed,
        test_curves=True,  # Figure 1's test-accuracy curves.
        verbose=0)
    result = search.run()
    print(result.summary())
    (out / "result.csv").write_text(result.to_csv())
    for path in kl.plots.save_figures(result, out / "figures"):
        print("wrote", path)


if __name__ == "__main__":
    main()
