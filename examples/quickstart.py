"""Quickstart: find winning tickets on MNIST-1D in a few minutes, offline.

MNIST-1D (Greydanus 2020) is generated locally by the `mnist1d` package, so
nothing is downloaded. An MLP (40-100-100-10) is trained dense with the
reference's protocol (Adam 1e-2, batch 100, 6,000 iterations), then pruned
20% per round (output layer 10%) and rewound to its initialization; each
round also trains the same masks on a fresh random initialization. The
search prints a line per training as it goes, then a table of test accuracy
for the tickets and the reinitialized masks: at the end of training (what
the MNIST-1D paper reports) and at the early-stop iteration (minimum
validation loss, what the lottery-ticket paper reports).

About a minute on a 2-core laptop CPU with JAX, about four minutes with
TensorFlow or PyTorch:

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
        controls=["random_reinit"], directory=args.out,
        # Presets compile with kl.fast_compile_settings: XLA on TensorFlow,
        # torch.compile on PyTorch (JAX always compiles), once per search.
    )
    result = search.run()

    print(f"\n{'':>7}  {'ticket':>15}  {'random reinit':>15}   test accuracy")
    print(f"{'Pm':>7}  {'final':>7} {'early':>7}  {'final':>7} {'early':>7}   (early: at early stop)")
    for ticket in result.tickets():
        control = [r for r in result.controls("random_reinit") if r.round == ticket.round]
        reinit = "".join(f"{r.final['test_accuracy']:>7.3f} {r.early_stop['test_accuracy']:>7.3f}"
                         for r in control) or f"{'dense':>15}"
        print(f"{ticket.density:>7.1%}  {ticket.final['test_accuracy']:>7.3f} "
              f"{ticket.early_stop['test_accuracy']:>7.3f}  {reinit}")


if __name__ == "__main__":
    main()
