"""One training that ends sparse against lottery tickets: dense, gradual pruning (every
layer at the same sparsity, and with ERK layer densities), SET, RigL, SNIP and tickets at
10%, 5% and 2% density.

Every method trains the same number of steps as the dense run (the same
epochs, batch and optimizer, from the same θ0 per seed); the tickets come
from a `TicketSearch` of 12 rounds at a rate that lands on 10.2%, 5.3% and
2.0% (rounds 7, 9 and 12), so each ticket costs 8, 10 or 13 such trainings.
Test accuracy is measured at the end of training (no early stop), on the
data set's test split.

    python examples/sparse_training_comparison.py run lenet --seed 0 --out runs/sparse
    python examples/sparse_training_comparison.py run conv2 --seed 0 --out runs/sparse
    python examples/sparse_training_comparison.py report runs/sparse --docs docs/figures

`run` writes one JSON file per network and seed; `report` prints the table
of docs/results.md and draws its figure from all of them.
"""

import argparse
import json
import math
import os
import pathlib
import sys
import time

DENSITIES = (0.1, 0.05, 0.02)
TICKET_ROUNDS = {0.1: 7, 0.05: 9, 0.02: 12}
RATE = 1 - 0.02 ** (1 / 12)  # 12 rounds from 100% to 2%.
# network: (data set, learning rate (the paper's), epochs)
NETWORKS = {"lenet": ("mnist", 1.2e-3, 5), "conv2": ("fashion_mnist", 2e-4, 3)}
METHODS = ("gradual", "gradual_erk", "set", "rigl", "snip", "ticket")


def run(network, seed, out, data_dir, limit=None, epochs=None, every=100, tickets="iterative"):
    import keras
    import numpy as np

    import keras_lottery as kl
    from keras_lottery import models
    from keras_lottery.data import datasets

    dataset, learning_rate, default_epochs = NETWORKS[network]
    epochs = epochs or default_epochs
    splits = datasets.load(dataset, data_dir=data_dir, validation_size=5000)
    x, y = splits.train
    if limit:
        x, y = x[:limit], y[:limit]
    batch = 60
    steps = epochs * math.ceil(len(x) / batch)
    name = {"lenet": "lenet_300_100", "conv2": "conv2"}[network]

    def build():
        keras.utils.set_random_seed(seed)  # The same θ0 for every method of a seed.
        model = kl.prunable(models.get(name, input_shape=x.shape[1:], num_classes=10))
        model.compile(keras.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy",
                      metrics=["accuracy"], **kl.fast_compile_settings(100))
        return model

    def train(model, callbacks=()):
        keras.utils.set_random_seed(seed + 1)  # The same data order for every method.
        start = time.time()
        model.fit(x, y, batch_size=batch, epochs=epochs, callbacks=list(callbacks), verbose=0)
        _, accuracy = model.evaluate(*splits.test, batch_size=1000, verbose=0)
        return {"accuracy": float(accuracy), "density": kl.sparsity_report(model).density,
                "steps": steps, "seconds": round(time.time() - start, 1)}

    path = pathlib.Path(out) / f"{network}_seed{seed}.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    settings = {"examples": len(x), "epochs": epochs, "batch": batch, "update_every": every,
                "tickets": tickets}
    if results.get("settings", settings) != settings:
        raise SystemExit(f"{path} holds a run with other settings: {results['settings']}")
    results["settings"] = settings

    def record(key, value):
        results[key] = value
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1))  # Kept after each training.
        print(network, seed, key, value, flush=True)

    begin, end = (round(f * steps / every) * every for f in (0.1, 0.6))
    for density in DENSITIES:
        made = {
            "gradual": lambda: [kl.GradualPruning(kl.PolynomialDecay(
                0.0, 1 - density, begin_step=begin, end_step=end, frequency=every))],
            # The same with ERK layer densities, the budget SET and RigL start from.
            "gradual_erk": lambda: [kl.GradualPruning(kl.PolynomialDecay(
                0.0, 1 - density, begin_step=begin, end_step=end, frequency=every),
                budget="erk")],
            "set": lambda: [kl.SET(density, update_every=every, seed=seed)],
            "rigl": lambda: [kl.RigL(density, (x, y), batch_size=batch, update_every=every,
                                     seed=seed)],
        }
        for method, callbacks in made.items():
            if f"{method}@{density}" not in results:
                trained = train(build(), callbacks())
                if abs(trained["density"] - density) > 1e-3:  # A method that missed its density.
                    raise SystemExit(f"{method} ended at density {trained['density']}, "
                                     f"not {density}")
                record(f"{method}@{density}", trained)
        if f"snip@{density}" not in results:
            model = build()
            masks = kl.prune_at_initialization(model, "snip", density, kl.rates_for(model, 0.2),
                                               (x, y), budget="global")
            kl.apply_masks(model, masks)
            record(f"snip@{density}", train(model))
    directory = pathlib.Path(out) / f"{network}_tickets_seed{seed}"
    if tickets == "iterative":
        search = kl.TicketSearch(build(), x, y, rounds=12, prune_rates=RATE, seed=seed,
                                 directory=directory, verbose=0)
    else:  # One-shot: each density pruned once from the dense training, then retrained.
        search = kl.TicketSearch(build(), x, y, one_shot=list(DENSITIES), prune_rates=RATE,
                                 seed=seed, directory=directory, verbose=0)
    result = search.run(test_data=splits.test, epochs=epochs, batch_size=batch)
    found = {r.round: r for r in result.records if r.kind == "ticket"}
    record("dense", {"accuracy": found[0].final["test_accuracy"], "density": 1.0,
                     "steps": found[0].iterations})
    for index, density in enumerate(DENSITIES):
        round_ = TICKET_ROUNDS[density] if tickets == "iterative" else index + 1
        ticket = found[round_]
        cost = (sum(found[r].iterations for r in range(round_ + 1)) if tickets == "iterative"
                else found[0].iterations + ticket.iterations)
        record(f"ticket@{density}", {"accuracy": ticket.final["test_accuracy"],
                                     "density": ticket.density, "steps": cost})


def report(out, figures):
    import numpy as np

    table = {}
    for path in sorted(pathlib.Path(out).glob("*_seed*.json")):
        network = path.name.split("_seed")[0]
        for key, value in json.loads(path.read_text()).items():
            table.setdefault(network, {}).setdefault(key, []).append(value)
    settings_of = {}
    for network, rows in table.items():
        settings_of[network] = {json.dumps(s, sort_keys=True) for s in rows.pop("settings", [])}
        if len(settings_of[network]) != 1:
            raise SystemExit(f"{network}: seeds run with different (or unrecorded) settings")
    lines = []
    for network, rows in table.items():
        seeds = max(len(found) for found in rows.values())  # Some may be unfinished.
        settings = json.loads(next(iter(settings_of[network])))
        lines.append(f"\n{network} ({seeds} seeds; {settings}): test accuracy % "
                     "(mean ± std), and training steps\n")
        lines.append("| method | " + " | ".join(f"{d:.0%} density" for d in DENSITIES)
                     + " | steps |")
        lines.append("|---" * (len(DENSITIES) + 2) + "|")
        dense = rows.get("dense", [])
        if dense:
            accuracy = np.array([r["accuracy"] for r in dense]) * 100
            lines.append(f"| dense | {accuracy.mean():.2f} ± {accuracy.std():.2f} (100%, "
                         f"{len(dense)} seeds)" + " |" * len(DENSITIES) + f" {dense[0]['steps']} |")
        for method in METHODS:
            cells, steps = [], []
            for density in DENSITIES:
                found = rows.get(f"{method}@{density}", [])
                if not found:
                    cells.append("")
                    continue
                accuracy = np.array([r["accuracy"] for r in found]) * 100
                actual = np.mean([r["density"] for r in found])
                cells.append(f"{accuracy.mean():.2f} ± {accuracy.std():.2f}"
                             + (f" ({actual:.1%})" if method == "ticket" else "")
                             + ("" if len(found) == seeds else f" ({len(found)} seeds)"))
                steps.append(str(found[0]["steps"]))
            lines.append(f"| {method} | " + " | ".join(cells) + " | "
                         + (steps[0] if len(set(steps)) == 1 else " / ".join(steps)) + " |")
    print("\n".join(lines))
    if figures:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker

        fig, axes = plt.subplots(1, len(table), figsize=(5 * len(table), 4), squeeze=False)
        for ax, (network, rows) in zip(axes[0], table.items()):
            if rows.get("dense"):
                dense = np.mean([r["accuracy"] for r in rows["dense"]]) * 100
                ax.axhline(dense, color="k", ls="--", label="dense")
            for method in METHODS:
                points = [(d, [r["accuracy"] * 100 for r in rows.get(f"{method}@{d}", [])])
                          for d in DENSITIES]
                points = [(d, v) for d, v in points if v]
                ax.errorbar([d * 100 for d, _ in points], [np.mean(v) for _, v in points],
                            yerr=[np.std(v) for _, v in points], marker="o", capsize=3,
                            label=method)
            ax.set_xscale("log")
            ax.set_xticks([2, 5, 10], ["2%", "5%", "10%"])
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_xlabel("density")
            ax.set_ylabel("test accuracy (%)")
            ax.set_title(network)
            ax.legend()
        fig.tight_layout()
        os.makedirs(figures, exist_ok=True)
        fig.savefig(pathlib.Path(figures) / "sparse_training_comparison.png", dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    runner = sub.add_parser("run")
    runner.add_argument("network", choices=sorted(NETWORKS))
    runner.add_argument("--seed", type=int, default=0)
    runner.add_argument("--out", required=True)
    runner.add_argument("--data-dir", default=None, help="local data (else tfds)")
    runner.add_argument("--limit", type=int, default=None, help="training examples (quick runs)")
    runner.add_argument("--epochs", type=int, default=None, help="default: the network's")
    runner.add_argument("--tickets", choices=("iterative", "one-shot"), default="iterative",
                        help="iterative: 12 rounds to 2%% (default); one-shot: each density "
                        "pruned once from the dense training")
    runner.add_argument("--every", type=int, default=100,
                        help="steps between mask updates (gradual, SET, RigL); default 100")
    reporter = sub.add_parser("report")
    reporter.add_argument("out")
    reporter.add_argument("--docs", default=None, help="folder for the figure")
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args.network, args.seed, args.out, args.data_dir, args.limit, args.epochs, args.every,
            args.tickets)
    else:
        report(args.out, args.docs)


if __name__ == "__main__":
    sys.exit(main())
