"""LeNet-300-100 on MNIST: winning tickets against random reinitialization.

The paper's setting (Frankle & Carbin 2019, Figures 1-3) on a shorter
schedule: Adam 1.2e-3, batch 60, fc layers pruned 20% per round and the
output layer 10%, 5,000 training images held out for the early-stop
criterion (evaluated every 100 iterations). Prints one line per training
and a table; writes the SearchResult (JSON, CSV) to --out.

Takes about 2 minutes per round of 2 epochs (ticket and control) on a 2-core
laptop CPU with the JAX backend. Run:

    KERAS_BACKEND=jax python examples/lenet_mnist.py --data ../shared/data/mnist.npz \
        --rounds 5 --epochs 2 --out runs/lenet_mnist
"""

import argparse
import pathlib

import keras
import numpy as np

import keras_lottery as kl


def load_mnist(path):
    with np.load(path) as data:
        x, y = data["x_train"], data["y_train"]
        x_test, y_test = data["x_test"], data["y_test"]
    scale = lambda a: (a.reshape(len(a), -1) / 255.0).astype("float32")  # noqa: E731
    # The paper holds out 5,000 training examples for validation.
    return (scale(x[5000:]), y[5000:]), (scale(x[:5000]), y[:5000]), (scale(x_test), y_test)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="path to mnist.npz (Keras layout)")
    parser.add_argument("--rounds", type=int, default=5, help="pruned rounds after the dense one")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per round")
    parser.add_argument("--eval-every", type=int, default=100, help="iterations between evaluations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/lenet_mnist", help="run directory (resumable)")
    args = parser.parse_args()

    train, validation, test = load_mnist(args.data)
    keras.utils.set_random_seed(args.seed)
    model = kl.models.lenet_300_100(input_shape=(784,))
    model.compile(keras.optimizers.Adam(1.2e-3), "sparse_categorical_crossentropy",
                  metrics=["accuracy"], steps_per_execution=args.eval_every)
    search = kl.TicketSearch(
        model, *train, rounds=args.rounds, epochs=args.epochs, batch_size=60,
        eval_every=args.eval_every, validation_data=validation, test_data=test,
        controls=["random_reinit"], directory=args.out, seed=args.seed, verbose=0,
    )
    result = search.run()
    print(result.summary())
    out = pathlib.Path(args.out)
    (out / "result.csv").write_text(result.to_csv())
    print(f"\nwrote {out / 'result.json'} and {out / 'result.csv'}")


if __name__ == "__main__":
    main()
