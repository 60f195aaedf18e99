"""Filter tickets against unstructured tickets: Conv-2 on Fashion-MNIST, and the shrunk model.

The paper names structured pruning as future work. This example runs two
searches of Conv-2 (the paper's `conv2_cifar10` preset: Adam 2e-4, batch 60)
on Fashion-MNIST from the same θ0, each with the random-reinitialization
control:

1. unstructured tickets, every layer 20% a round (output 10%);
2. filter tickets (`structure="filters"`): each round removes 20% of each
   convolution's filters by their L1 norm (and with them the next layer's
   inputs); the Dense layers go on weight by weight at 20% (output 10%).

It writes `table.md` into --out (test accuracy at the early-stop iteration,
per round, with each round's overall density and the convolutions'
density) and `figure.png`, then shrinks the last filter ticket with
`keras_lottery.shrink` and reports its parameters and its inference time
against the dense model (`predict` over the test set, median of 5).

About 20 minutes with JAX on a 2-core CPU at the defaults:

    KERAS_BACKEND=jax python examples/structured_tickets.py --data-dir path/to/data
"""

import argparse
import pathlib
import statistics
import time

import numpy as np

import keras_lottery as kl

RATES = kl.PruneRates(0.2, by_kind={"output": 0.1})


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", help="local copy of the data (fashion-mnist/)")
    parser.add_argument("--rounds", type=int, default=5, help="pruned rounds (20%% a round)")
    parser.add_argument("--iterations", type=int, default=1000,
                        help="per training, rounded up to whole epochs (the paper: 20,000)")
    parser.add_argument("--limit", type=int, default=12000, help="training examples used")
    parser.add_argument("--out", default="runs/structured_tickets")
    args = parser.parse_args()

    out = pathlib.Path(args.out)
    common = dict(data_dir=args.data_dir, dataset="fashion_mnist", rounds=args.rounds,
                  iterations=args.iterations, limit=args.limit, prune_rates=RATES,
                  controls=["random_reinit"])
    searches = {}
    for name, structure in (("unstructured", None), ("filters", "filters")):
        searches[name] = kl.TicketSearch.from_preset(
            "conv2_cifar10", structure=structure, directory=out / name, **common)
        searches[name].run()
    results = {name: search.run() for name, search in searches.items()}
    table = markdown_table(results, searches)
    table += shrunk_report(searches["filters"], args.rounds)
    (out / "table.md").write_text(table)
    print(table)
    figure(results, out / "figure.png")


def conv_density(search, round_):
    masks = search.masks(round_)
    conv = [m for p, m in masks.items() if m.ndim == 4]
    return sum(int(m.sum()) for m in conv) / sum(m.size for m in conv)


def accuracy(record):
    return record.early_stop.get("test_accuracy", record.final["test_accuracy"])


def markdown_table(results, searches):
    lines = [
        "Fashion-MNIST test accuracy at the early-stop iteration (Conv-2):", "",
        "| round | unstructured: density (conv) | ticket | reinit | "
        "filters: density (conv) | ticket | reinit |",
        "|" + " --- |" * 7,
    ]
    for ticket in results["unstructured"].tickets():
        r = ticket.round
        cells = []
        for name in ("unstructured", "filters"):
            record = results[name].record(r)
            cells.append(f"{record.density:.1%} ({conv_density(searches[name], r):.1%})")
            cells.append(f"{accuracy(record):.2%}")
            cells.append("-" if r == 0 else f"{accuracy(results[name].record(r, 'random_reinit')):.2%}")
        lines.append(f"| {r} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def shrunk_report(search, round_):
    import keras

    ticket = search.ticket(round_)
    plain, small = kl.strip(ticket), kl.shrink(ticket)
    x, _ = search.test_data if isinstance(search.test_data, tuple) else (None, None)
    if x is None:
        return ""
    gap = float(np.max(np.abs(small.predict(x, verbose=0) - ticket.predict(x, verbose=0))))
    seconds = {}
    for name, model in (("dense", plain), ("shrunk", small)):
        model.predict(x, batch_size=1000, verbose=0)  # Compiles.
        times = []
        for _ in range(5):
            began = time.perf_counter()
            model.predict(x, batch_size=1000, verbose=0)
            times.append(time.perf_counter() - began)
        seconds[name] = statistics.median(times)
    filters = [layer.filters for layer in small.layers
               if isinstance(layer, keras.layers.Conv2D)]
    return (
        f"\nRound {round_}'s filter ticket shrunk (`keras_lottery.shrink`): convolutions of "
        f"{filters} filters (from 64, 64); {plain.count_params():,} -> "
        f"{small.count_params():,} parameters; predictions within {gap:.1e} of the masked "
        f"model's; inference over the {len(x):,} test images {seconds['dense']:.3f} s -> "
        f"{seconds['shrunk']:.3f} s ({seconds['dense'] / seconds['shrunk']:.2f}x, "
        f"{keras.backend.backend()}).\n")


def figure(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, style in (("unstructured", "o-"), ("filters", "s-")):
        tickets = results[name].tickets()
        ax.plot([t.density for t in tickets], [accuracy(t) for t in tickets], style,
                label=f"{name} tickets")
        reinit = [results[name].record(t.round, "random_reinit") for t in tickets if t.round]
        ax.plot([r.density for r in reinit], [accuracy(r) for r in reinit], style[0] + "--",
                label=f"{name}, random reinit")
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("density (fraction of weights left)")
    ax.set_ylabel("test accuracy at early stop")
    ax.set_title("Conv-2 on Fashion-MNIST")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
