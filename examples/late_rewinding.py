"""Late rewinding: rewind to iteration k of the dense run instead of θ0.

Frankle et al. (2020, "Linear Mode Connectivity and the Lottery Ticket
Hypothesis") find tickets in deep networks by rewinding to an early
iteration k rather than to initialization. This runs the same LeNet-300-100
MNIST search for several k (0 = θ0) and compares the tickets.

With the defaults, about 5 minutes on a 2-core CPU with JAX.

    KERAS_BACKEND=jax python examples/late_rewinding.py --data-dir path/to/data
"""

import argparse
import pathlib

import keras_lottery as kl


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", help="folder holding mnist.npz")
    parser.add_argument("--rewind-steps", type=int, nargs="+", default=[0, 100, 500])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--out", default="runs/late_rewinding")
    args = parser.parse_args()

    out = pathlib.Path(args.out)
    results = {}
    for k in args.rewind_steps:
        results[f"rewind to {k}"] = kl.TicketSearch.from_preset(
            "lenet_300_100_mnist", data_dir=args.data_dir, rounds=args.rounds,
            iterations=args.iterations, rewind_step=k, directory=out / f"k{k}", verbose=0).run()
        print(f"rewind to iteration {k}\n{results[f'rewind to {k}'].summary()}\n")
    for path in kl.plots.save_figures(results, out / "figures"):
        print("wrote", path)


if __name__ == "__main__":
    main()
