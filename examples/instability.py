"""Instability analysis: is training stable from θ0, and from iteration k?

Frankle, Dziugaite, Roy & Carbin (2020, "Linear Mode Connectivity and the
Lottery Ticket Hypothesis"): two copies trained from one start with different
data orders end linearly connected (error barrier ~0) only from stable
starts, and iterative magnitude pruning finds matching tickets only by
rewinding to a stable point. Two experiments, over several seeds:

- `lenet`: LeNet-300-100 on MNIST with the paper's Adam settings, 5,000
  iterations a training, 8 rounds of pruning (to 16.9% of the weights). The
  rewind step is chosen among iterations 0, 100, 500 and 1834 of the dense
  run, and every round's ticket is measured. About 5 minutes a seed with JAX
  on a 2-core CPU.
- `resnet8`: a small ResNet (batch normalization) on Fashion-MNIST with SGD
  0.1, momentum 0.9 and no warmup (the `resnet8_fashion_mnist` preset, one
  epoch a training), pruned globally to 12.5% in 3 rounds, searched three
  times: rewound to θ0, rewound to iteration 100, and rewound to the earliest
  stable of iterations 0, 100, 300 and 917; every round's ticket measured in
  each, on 15 path points. About 30 minutes a seed.

Prints the tables of docs/results.md and writes figures to OUT/figures.
Rerunning resumes: nothing already measured is trained again.

    KERAS_BACKEND=jax python examples/instability.py --data-dir path/to/data \
        --experiment lenet --seeds 0 1 2 --out runs/instability
"""

import argparse
import pathlib

import numpy as np

import keras_lottery as kl

EXPERIMENTS = {
    "lenet": {
        "searches": {"candidates": dict(rewind_candidates=[0, 100, 500, 1834])},
        "preset": "lenet_300_100_mnist",
        "settings": dict(iterations=5000, rounds=8, instability=True),
    },
    "resnet8": {
        "searches": {"theta0": dict(rewind_step=0), "k100": dict(rewind_step=100),
                     "candidates": dict(rewind_candidates=[0, 100, 300, 917])},
        "preset": "resnet8_fashion_mnist",
        "settings": dict(instability=True, path_points=15),
    },
}

# How the tables name each search.
SEARCHES = {"theta0": "rewound to θ0", "k100": "rewound to 100",
            "candidates": "rewind chosen by instability"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", help="folder holding mnist.npz and fashion_mnist.npz")
    parser.add_argument("--experiment", choices=sorted(EXPERIMENTS), required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="runs/instability")
    args = parser.parse_args()

    experiment = EXPERIMENTS[args.experiment]
    out = pathlib.Path(args.out) / args.experiment
    results = {}
    for seed in args.seeds:  # Seed by seed: an interrupted study has whole seeds.
        for label, search in experiment["searches"].items():
            results.setdefault(label, []).append(kl.TicketSearch.from_preset(
                experiment["preset"], data_dir=args.data_dir, seed=seed,
                directory=out / label / f"seed_{seed}", verbose=1,
                **experiment["settings"], **search).run())
    print(candidates_table(results["candidates"]))
    print()
    print(tickets_table(results))
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    first = {f"{label} seed {args.seeds[0]}": runs[0] for label, runs in results.items()}
    figure = kl.plots.stability_barriers(first)[0].figure
    figure.savefig(figures / f"{args.experiment}_barriers.png", dpi=120, bbox_inches="tight")
    figure = kl.plots.stability_paths(results["candidates"][0]).figure
    figure.savefig(figures / f"{args.experiment}_paths.png", dpi=120, bbox_inches="tight")
    print("wrote", figures)


def spread(values, digits=4):
    values = np.asarray(values, dtype=float)
    return f"{values.mean():.{digits}f} ± {values.std():.{digits}f}"


def line_ends(record):
    """The mean test accuracy of the two trained copies (the line's ends)."""
    accuracy = record.curves["accuracy"]
    return (accuracy[0] + accuracy[-1]) / 2


def candidates_table(runs):
    """The dense network's instability at each rewind candidate, over seeds."""
    lines = ["| rewind iteration | error barrier | loss barrier | stable (<= 0.02) | chosen |",
             "| ---: | ---: | ---: | ---: | ---: |"]
    chosen = [r.rewind_choice["chosen"] for r in runs]
    for index, candidate in enumerate(runs[0].rewind_choice["candidates"]):
        records = [r.rewind_choice["candidates"][index] for r in runs]
        lines.append(
            f"| {candidate.start_iteration} | {spread([r.error_barrier for r in records])} | "
            f"{spread([r.loss_barrier for r in records])} | "
            f"{sum(r.stable() for r in records)} of {len(records)} | "
            f"{chosen.count(candidate.start_iteration)} of {len(runs)} |")
    return "\n".join(lines)


def tickets_table(results):
    """Each round's ticket, per search: its test accuracy at the end of training
    (as the search recorded it), the mean test accuracy of the line's two ends
    (both copies; normalization statistics recomputed, as on the whole line),
    and the error barrier.

    A ticket *matches* when its mean accuracy at the line's ends is at least
    the dense network's mean there minus one standard deviation (over seeds),
    the instability paper's rule. The line's ends, not the end of training:
    with batch normalization and a constant learning rate of 0.1 the moving
    statistics lag the weights, and the accuracy with them varies by several
    points from seed to seed (resnet8); without batch normalization (LeNet)
    both measure the same networks.
    """
    dense = np.array([line_ends(r.instability[0]) for r in results["candidates"]])
    threshold = dense.mean() - dense.std()
    lines = ["| search | rewind | round | Pm | end of training | line ends | error barrier |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    # Round 0 is the same dense training in every search: one row, first.
    rows = [("candidates", results["candidates"], 0)] + [
        (label, runs, index) for label, runs in results.items()
        for index in range(1, len(runs[0].tickets()))]
    for label, runs, index in rows:
        ticket = runs[0].tickets()[index]
        accuracy = [r.tickets()[index].final["test_accuracy"] for r in runs]
        ends = [line_ends(r.instability[index]) for r in runs]
        barrier = [r.instability[index].error_barrier for r in runs]
        rewind = sorted({r.instability[index].start_iteration for r in runs})
        matches = " (matches)" if index and np.mean(ends) >= threshold else ""
        lines.append(
            f"| {'dense' if index == 0 else SEARCHES[label]} | {', '.join(map(str, rewind))} | "
            f"{ticket.round} | {ticket.density:.2%} | {spread(accuracy)} | "
            f"{spread(ends)}{matches} | {spread(barrier)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
