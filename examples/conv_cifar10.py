"""Conv-2/4/6 on CIFAR-10: winning tickets against random reinitialization (Figure 4).

The paper's settings from the presets (Adam, batch 60, conv 10-15% / fc 20%
/ output 10% per round, 5,000 held out for the early-stop criterion). CIFAR-10
comes from --data-dir (cifar-10-batches-py/ or cifar10.npz), KERAS_LOTTERY_DATA,
or tfds; offline without a copy, `--dataset fashion_mnist` runs the same
networks on Fashion-MNIST instead.

Conv-2 with --iterations 2000 --rounds 6 takes about 15 minutes on a 2-core
CPU with JAX; the paper's 20K iterations and 20 rounds take days there.

    KERAS_BACKEND=jax python examples/conv_cifar10.py --network conv2 \
        --dataset fashion_mnist --data-dir path/to/data --rounds 6 --iterations 2000
"""

import argparse
import pathlib

import keras_lottery as kl


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--network", choices=["conv2", "conv4", "conv6"], default="conv2")
    parser.add_argument("--dataset", choices=["cifar10", "fashion_mnist"], default="cifar10")
    parser.add_argument("--data-dir", help="local copy of the data set")
    parser.add_argument("--rounds", type=int, default=None, help="default: the preset's")
    parser.add_argument("--iterations", type=int, default=None, help="default: the preset's")
    parser.add_argument("--limit", type=int, default=None, help="first N training images")
    parser.add_argument("--out", default=None, help="run directory; default runs/<network>_<dataset>")
    args = parser.parse_args()

    out = pathlib.Path(args.out or f"runs/{args.network}_{args.dataset}")
    overrides = {k: v for k, v in {"rounds": args.rounds, "iterations": args.iterations}.items()
                 if v is not None}
    search = kl.TicketSearch.from_preset(
        f"{args.network}_cifar10", dataset=args.dataset, data_dir=args.data_dir, limit=args.limit,
        controls=["random_reinit"], directory=out, **overrides)
    result = search.run()
    print(result.summary())
    (out / "result.csv").write_text(result.to_csv())
    for path in kl.plots.save_figures(result, out / "figures"):
        print("wrote", path)


if __name__ == "__main__":
    main()
