"""The paper's figures from `SearchResult`s, drawn with matplotlib.

Figure 1: test accuracy over iterations at several densities. Instability:
error along the line between two copies, and the barrier against the rewind
iteration and against density. Figures 2-3:
early-stop iteration and accuracy against density, tickets against the
random-reinitialization control. Comparisons: one-shot against iterative,
with and without dropout, any searches side by side. An `AggregateResult`
(several seeds) is drawn as its mean with the minimum and maximum as error
bars and bands, as the paper draws its five trials.
"""

import pathlib

from keras_lottery import checks
from keras_lottery.search.results import SearchResult, headline_quantity


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")  # Files only: works without a display.
        import matplotlib.pyplot as plt
    except ImportError as error:  # pragma: no cover - depends on the install
        raise ImportError(
            "Plotting needs matplotlib: pip install 'keras-lottery[plot]'"
        ) from error
    return plt


def accuracy_curves(result: SearchResult, densities=None, kind="ticket", ax=None):
    """Test (else validation) accuracy over iterations, one line per density.

    Args:
        result: a search with curves (run with `validation_data`).
        densities: the rounds' densities to draw (nearest rounds are used);
            defaults to every round.
        kind: `"ticket"` or a control.
        ax: a matplotlib Axes to draw on; a new figure by default.

    Returns:
        The Axes.
    """
    records = [r for r in result.records if r.kind == kind and r.curves]
    if not records:
        raise ValueError(
            f"Expected {kind} records with curves (a search run with validation_data). "
            "Received none."
        )
    if densities is not None:
        records = sorted({min(records, key=lambda r: abs(r.density - d)).round: None
                          for d in densities})
        records = [r for r in result.records if r.kind == kind and r.round in records]
    ax = ax or _pyplot().subplots(figsize=(6, 4))[1]
    # What every record drew (a resumed search may hold test curves in early records only).
    key = _quantity(set.intersection(*(set(r.curves) for r in records)))
    for record in records:
        line, = ax.plot(record.curves["iteration"], record.curves[key],
                        label=f"Pm={record.density:.1%}")
        if getattr(record, "curves_min", None):  # Several seeds: their range.
            ax.fill_between(record.curves["iteration"], record.curves_min[key],
                            record.curves_max[key], color=line.get_color(), alpha=0.2)
    ax.set_xlabel("training iterations")
    ax.set_ylabel(key.replace("_", " "))
    ax.set_title(f"{kind.replace('_', ' ')}: {key.replace('_', ' ')} while training")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return ax


def early_stop(results: dict, axes=None):
    """Early-stop iteration and accuracy at it against density.

    Args:
        results: `{label: SearchResult}`; each search's tickets and any
            controls it ran are drawn, labelled `label kind`.
        axes: two matplotlib Axes; a new figure by default.

    Returns:
        The two Axes.
    """
    if not isinstance(results, dict):
        results = {"": results}
    if axes is None:
        axes = _pyplot().subplots(1, 2, figsize=(11, 4))[1]
    key = "test_accuracy"
    for label, result in results.items():
        for kind in dict.fromkeys(r.kind for r in result.records):
            records = [r for r in result.records if r.kind == kind]
            x = [100 * r.density for r in records]
            name = f"{label} {kind.replace('_', ' ')}".strip()
            iterations = [r.early_stop.get("iteration", r.iterations) for r in records]
            key = _quantity({**records[0].final, **records[0].early_stop})
            values = [r.early_stop.get(key, r.final.get(key)) for r in records]
            if hasattr(records[0], "spread"):  # Several seeds: mean, [min, max] bars.
                for ax, y, names in ((axes[0], iterations, ("early_stop_iteration", "iterations")),
                                     (axes[1], values, (f"early_stop_{key}", f"final_{key}"))):
                    ax.errorbar(x, y, yerr=_range(records, y, names), marker="o", capsize=3,
                                label=f"{name} ({len(result.seeds)} seeds)")
                continue
            axes[0].plot(x, iterations, marker="o", label=name)
            axes[1].plot(x, values, marker="o", label=name)
    for ax, ylabel in zip(axes, ["early-stop iteration",
                                 f"{key.replace('_', ' ')} at early stop"]):
        _density_axis(ax)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return axes


def _density_axis(ax):
    """Pm in percent on a log scale, sparser to the right (the paper's figures),
    labelled in plain numbers (100, 50, 20, ...) rather than powers of ten."""
    import matplotlib.ticker as ticker

    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(ticker.FuncFormatter(
        lambda v, _: f"{v:g}" if f"{v:g}"[0] in "25" else ""))
    ax.set_xlabel("percent of weights remaining (Pm)")


def _range(records, means, names):
    """Error bars from each record's minimum to its maximum, around `means`."""
    low, high = [], []
    for record, mean in zip(records, means):
        spread = next(record.spread[n] for n in names if n in record.spread)
        low.append(mean - spread.min)
        high.append(spread.max - mean)
    return [low, high]


def _error_curve(record):
    """The line's error (1 - accuracy) or, without an accuracy metric, its loss."""
    name = record.error_quantity or "loss"
    values = record.curves[name]
    return ([1 - v for v in values], "error") if record.error_quantity else (values, "loss")


def stability_paths(result: SearchResult, ax=None):
    """Error along the line between two copies (the instability paper's Figure 1):
    one line per rewind candidate and per round's ticket measured.

    Returns:
        The Axes.
    """
    records = [*((result.rewind_choice or {}).get("candidates", [])), *result.instability]
    if not records:
        raise ValueError("Expected instability records (a search run with instability=True "
                         "or rewind_candidates). Received none.")
    ax = ax or _pyplot().subplots(figsize=(6, 4))[1]
    for record in records:
        values, what = _error_curve(record)
        label = (f"{record.network} from iteration {record.start_iteration}"
                 if record.network != "ticket" else
                 f"ticket Pm={record.density:.1%} from iteration {record.start_iteration}")
        ax.plot(record.curves["alpha"], values, marker=".", label=label)
    ax.set_xlabel("interpolation between the two copies")
    ax.set_ylabel(f"{records[0].evaluated_on} {what}")
    ax.set_title("instability: the line between two copies")
    ax.legend(fontsize="x-small")
    ax.grid(alpha=0.3)
    return ax


def stability_barriers(results: dict, axes=None):
    """Instability against the rewind iteration (rewind candidates) and against
    density (each round's ticket), one line per search.

    Args:
        results: `{label: SearchResult}`.
        axes: two matplotlib Axes; a new figure by default.

    Returns:
        The two Axes.
    """
    if not isinstance(results, dict):
        results = {"": results}
    if axes is None:
        axes = _pyplot().subplots(1, 2, figsize=(11, 4))[1]
    for label, result in results.items():
        candidates = (getattr(result, "rewind_choice", None) or {}).get("candidates", [])
        if candidates:
            axes[0].plot([max(r.start_iteration, 1) for r in candidates],
                         [r.instability for r in candidates], marker="o",
                         label=f"{label} {candidates[0].network}".strip())
        tickets = getattr(result, "instability", [])
        if tickets:
            axes[1].plot([100 * r.density for r in tickets], [r.instability for r in tickets],
                         marker="o", label=f"{label} rewind {tickets[-1].start_iteration}".strip())
    axes[0].set_xscale("log")
    axes[0].set_xlabel("rewind iteration (0 drawn at 1)")
    _density_axis(axes[1])
    for ax in axes:
        ax.set_ylabel("instability (error barrier)")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    return axes


def save_figures(results, directory) -> list:
    """Writes the figures for one search (or `{label: search}`) as PNG files.

    A search may be a `SearchResult` or an `AggregateResult` of several seeds.

    Returns the paths written: `accuracy_curves.png` (if the search has
    curves), `early_stop.png`, and with instability measured
    `stability_paths.png` and `stability_barriers.png`.
    """
    directory = pathlib.Path(checks.path("directory", directory))
    plt = _pyplot()
    if not isinstance(results, dict):
        results = {"": results}
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    first = next(iter(results.values()))
    if any(r.curves for r in first.records):
        figure, ax = plt.subplots(figsize=(6, 4))
        tickets = first.tickets()
        picks = [tickets[i].density for i in sorted({0, len(tickets) // 2, len(tickets) - 1})]
        accuracy_curves(first, densities=picks, ax=ax)
        written.append(_save(figure, directory / "accuracy_curves.png"))
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    early_stop(results, axes=axes)
    written.append(_save(figure, directory / "early_stop.png"))
    measured = {label: result for label, result in results.items()
                if getattr(result, "instability", None) or getattr(result, "rewind_choice", None)}
    if measured:
        figure, ax = plt.subplots(figsize=(6, 4))
        stability_paths(next(iter(measured.values())), ax=ax)
        written.append(_save(figure, directory / "stability_paths.png"))
        figure, axes = plt.subplots(1, 2, figsize=(11, 4))
        stability_barriers(measured, axes=axes)
        written.append(_save(figure, directory / "stability_barriers.png"))
    return written


def _save(figure, path):
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    _pyplot().close(figure)
    return path


def _quantity(values):
    """What to draw: test (else validation) accuracy, else the loss (a regression model)."""
    key = headline_quantity(values)
    if key is not None:
        return key
    raise ValueError(
        "Expected records with an accuracy or a loss (a search run with validation_data "
        f"or test_data). Received records with {sorted(values)}."
    )
