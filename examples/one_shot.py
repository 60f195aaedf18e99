"""One-shot against iterative pruning, LeNet-300-100 on MNIST (the paper's Figure 5).

Iterative: prune 20% per round, rewind, retrain. One-shot: train once, prune
straight to each density, rewind, train. Both rewind to θ0 and use the
paper's settings; the figure compares accuracy at early stop against density.

With --iterations 3000 --rounds 8, about 3 minutes on a 2-core CPU with JAX.

    KERAS_BACKEND=jax python examples/one_shot.py --data-dir path/to/data \
        --iterations 3000 --rounds 8
"""

import argparse
import pathlib

import keras_lottery as kl


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", help="folder holding mnist.npz")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--out", default="runs/one_shot")
    args = parser.parse_args()

    out = pathlib.Path(args.out)
    common = dict(data_dir=args.data_dir, iterations=args.iterations, verbose=0)
    iterative = kl.TicketSearch.from_preset(
        "lenet_300_100_mnist", rounds=args.rounds, directory=out / "iterative", **common).run()
    densities = [r.density for r in iterative.tickets()[1:]]
    one_shot = kl.TicketSearch.from_preset(
        "lenet_300_100_mnist", one_shot=densities, directory=out / "one_shot", **common).run()
    print("iterative\n" + iterative.summary() + "\n\none-shot\n" + one_shot.summary())
    for path in kl.plots.save_figures({"iterative": iterative, "one-shot": one_shot},
                                      out / "figures"):
        print("wrote", path)


if __name__ == "__main__":
    main()
