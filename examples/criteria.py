"""Pruning criteria compared: tickets against pruning at initialization (Frankle et al. 2021).

LeNet-300-100 on MNIST by default (`--network/--dataset` pick another preset
pair). Every method prunes one-shot to each density, then trains from θ0 with
the preset's settings:

- ticket: magnitude after training (`large_final`), rewound to θ0;
- snip, grasp, synflow, magnitude at init (`large_init` scored before any
  pruned training): pruning at initialization, each with two ablations, its
  masks shuffled within each layer (`random_pruning`) and on a new random
  initialization (`random_reinit`);
- random: random pruning, every layer at the same density.

Budgets: `--budget global` (the default, as the pruning-at-initialization
papers rank weights) for all methods but random, which is uniform per layer.
Writes a Markdown table (test accuracy at the early-stop iteration, mean of
the seeds) and a figure into --out.

About 25 minutes on a 2-core CPU with JAX at the defaults:

    KERAS_BACKEND=jax python examples/criteria.py --data-dir path/to/data
"""

import argparse
import pathlib

import numpy as np

import keras_lottery as kl

DENSITIES = (0.5, 0.2, 0.1, 0.05, 0.02)
AT_INIT = ("snip", "grasp", "synflow", "large_init")
ABLATIONS = ("random_pruning", "random_reinit")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--network", default="lenet_300_100")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--data-dir", help="local copy of the data set")
    parser.add_argument("--iterations", type=int, default=5000, help="per training")
    parser.add_argument("--densities", type=float, nargs="+", default=DENSITIES)
    parser.add_argument("--budget", choices=("global", "erk", "uniform"), default="global")
    parser.add_argument("--examples", type=int, default=256,
                        help="training examples SNIP and GraSP score on")
    parser.add_argument("--synflow-iterations", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--limit", type=int, help="first N training examples")
    parser.add_argument("--out", default="runs/criteria")
    args = parser.parse_args()

    out = pathlib.Path(args.out)
    preset = _preset(args.network, args.dataset)
    results = {}  # {(method, seed): SearchResult}
    for seed in args.seeds:
        for method in ("ticket", *AT_INIT, "random"):
            name = {"ticket": "large_final"}.get(method, method)
            criterion = kl.criteria.Criterion(name, examples=args.examples,
                                              iterations=args.synflow_iterations)
            search = kl.TicketSearch.from_preset(
                preset, network=args.network, dataset=args.dataset, data_dir=args.data_dir,
                limit=args.limit, iterations=args.iterations, seed=seed,
                one_shot=args.densities, criterion=criterion, prune_rates=0.2,
                budget="uniform" if method == "random" else args.budget,
                controls=ABLATIONS if method in AT_INIT else (),
                directory=out / f"{method}_seed{seed}")
            results[method, seed] = search.run()
    table = markdown_table(results, args)
    (out / "table.md").write_text(table)
    print(table)
    for path in figure(results, args, out / "criteria.png"):
        print("wrote", path)


def _preset(network, dataset):
    for name, preset in kl.presets.PRESETS.items():
        if preset.network == network and preset.dataset == dataset:
            return name
    return "lenet_300_100_mnist"  # Its hyperparameters, on the network and data asked for.


def accuracy(record):
    return record.early_stop.get("test_accuracy", record.final.get("test_accuracy"))


def mean_at(results, method, kind, density, seeds):
    """Mean test accuracy of `kind` trainings of `method` at one-shot `density`."""
    values = []
    for seed in seeds:
        for record in results[method, seed].records:
            # Pruned to `density` to the weight; a layer's floor of one weight may add a few.
            if record.kind == kind and record.round > 0 and abs(record.density - density) < 0.005:
                values.append(accuracy(record))
    return float(np.mean(values)) if values else None


def percent(values):
    return [np.nan if v is None else 100 * v for v in values]


def rows(args):
    yield "ticket (magnitude after training)", "ticket", "ticket"
    for method in AT_INIT:
        label = "magnitude at init" if method == "large_init" else method
        yield label, method, "ticket"
        yield f"{label}, shuffled", method, "random_pruning"
        yield f"{label}, reinitialized", method, "random_reinit"
    yield "random (uniform per layer)", "random", "ticket"


def markdown_table(results, args):
    dense = np.mean([accuracy(results["ticket", s].record(0)) for s in args.seeds])
    header = "| method | " + " | ".join(f"{d:.0%}" for d in args.densities) + " |"
    lines = [f"Dense: {dense:.2%} test accuracy at the early-stop iteration.", "",
             header, "|" + " --- |" * (len(args.densities) + 1)]
    for label, method, kind in rows(args):
        cells = [mean_at(results, method, kind, d, args.seeds) for d in args.densities]
        lines.append(f"| {label} | " + " | ".join(
            "-" if c is None else f"{c:.2%}" for c in cells) + " |")
    return "\n".join(lines) + "\n"


def figure(results, args, path, floor=90.0):
    """Accuracy against density; points below `floor` percent (a collapsed
    network) are drawn on the bottom edge as triangles and labelled."""
    plt = kl.plots._pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    x = [100 * d for d in args.densities]

    colors = {m: f"C{i}" for i, m in enumerate(("ticket", *AT_INIT, "random"))}
    stacked = {}  # annotations already at each (axes, x), to stack the next above them

    def draw(ax, values, style, label, method, **kwargs):
        y = np.array(percent(values))
        kwargs.setdefault("color", colors[method])
        ax.plot(x, np.maximum(y, floor), style, marker="o", label=label, **kwargs)
        for xi, yi in zip(x, y):
            if yi < floor:
                count = stacked.setdefault((id(ax), xi, round(yi)), len(stacked))
                ax.plot([xi], [floor], "v", color=kwargs["color"], markersize=9)
                ax.annotate(f"{yi:.0f}%", (xi, floor), textcoords="offset points",
                            xytext=(-30, 6 + 9 * (count % 3)), fontsize="x-small",
                            color=kwargs["color"])

    for label, method, kind in rows(args):
        values = [mean_at(results, method, kind, d, args.seeds) for d in args.densities]
        if kind == "ticket" and method not in AT_INIT:
            draw(axes[0], values, "-", label, method, linewidth=2.5)
            draw(axes[1], values, "-", label, method, alpha=0.35)
        elif kind == "ticket":
            draw(axes[0], values, "-", label, method)
        else:
            style = "--" if kind == "random_pruning" else ":"
            draw(axes[1], values, style, label, method)
    axes[0].set_title("criteria")
    axes[1].set_title("ablations of pruning at init (dashed: shuffled, dotted: reinitialized)",
                      fontsize="medium")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xticks(x, [f"{d:g}%" for d in x])
        ax.minorticks_off()
        ax.invert_xaxis()
        ax.set_ylim(floor - 0.5, None)
        ax.set_xlabel("percent of weights remaining")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small", ncol=2 if ax is axes[1] else 1, loc="lower left")
    axes[0].set_ylabel(f"test accuracy at early stop (%), below {floor:g}% on the edge")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return [path]


if __name__ == "__main__":
    main()
