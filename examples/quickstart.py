"""Quickstart: find winning tickets on MNIST-1D in a couple of minutes, offline.

MNIST-1D (Greydanus 2020) is generated locally by the `mnist1d` package, so
nothing is downloaded. An MLP (40-100-100-10) is trained dense, then pruned
20% per round (output layer 10%) and rewound to its initialization; each
round also trains the same masks on a fresh random initialization. Prints
dense vs tickets vs random reinitialization, with accuracy at the early-stop
iteration.

About a minute on a 2-core laptop CPU with JAX, a few with TensorFlow or torch:

    KERAS_BACKEND=jax python examples/quickstart.py
"""

import argparse

import keras_lottery as kl


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=11, help="pruned rounds after the dense one")
    parser.add_argument("--iterations", type=int, default=6000, help="training iterations per round")
    parser.add_argument("--out", default=None, help="run directory (resumable); none by default")
    args = parser.parse_args()

    search = kl.TicketSearch.from_preset(
        "mlp_mnist1d", rounds=args.rounds, iterations=args.iterations,
        controls=["random_reinit"], directory=args.out, verbose=0,
    )
    result = search.run()

    print(f"{'Pm':>7}  {'ticket':>7}  {'random reinit':>13}   (test accuracy at early stop)")
    for ticket in result.tickets():
        control = [r for r in result.controls("random_reinit") if r.round == ticket.round]
        reinit = f"{control[0].early_stop['test_accuracy']:.3f}" if control else "  dense"
        print(f"{ticket.density:>7.1%}  {ticket.early_stop['test_accuracy']:>7.3f}  {reinit:>13}")


if __name__ == "__main__":
    main()
