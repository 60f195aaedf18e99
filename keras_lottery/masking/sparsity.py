"""How sparse a model is, counted honestly: its prunable weights, and the
weights no mask covers (biases, normalization, layers without a masked twin).

A density of the prunable weights alone would overstate the pruning of a
model whose large layers stay dense, so the report gives both shares, and
`warn_unmasked` names every layer whose weights are left unmasked.
"""

import dataclasses
import warnings
from collections.abc import Mapping

import keras
import numpy as np

from keras_lottery import _keras
from keras_lottery.layers import NOT_PRUNED, MaskedLayer
from keras_lottery.layers.in_place import kernel_like
from keras_lottery.masking.masks import get_masks, masked_layers, prunable_variables
from keras_lottery.pruning.rules import validate_masks


@dataclasses.dataclass(frozen=True)
class WeightSparsity:
    """One weight's count of entries: total and remaining."""

    path: str
    shape: tuple
    total: int
    remaining: int

    @property
    def density(self) -> float:
        """Fraction of the weight remaining."""
        return self.remaining / self.total if self.total else 1.0


@dataclasses.dataclass(frozen=True)
class SparsityReport:
    """Counts of remaining weights, prunable and unmasked. `str()` gives a table.

    `rows` are the prunable (masked) weights; `unmasked` the trainable
    weights without a mask, all of which remain. `density` is over the
    prunable weights, `overall_density` over all of them.
    """

    rows: tuple
    unmasked: tuple = ()

    @property
    def total(self) -> int:
        """Prunable weights."""
        return sum(row.total for row in self.rows)

    @property
    def remaining(self) -> int:
        """Prunable weights remaining."""
        return sum(row.remaining for row in self.rows)

    @property
    def density(self) -> float:
        """Fraction of all prunable weights remaining."""
        return self.remaining / self.total if self.total else 1.0

    @property
    def unmasked_total(self) -> int:
        """Trainable weights that no mask covers."""
        return sum(row.total for row in self.unmasked)

    @property
    def prunable_share(self) -> float:
        """Fraction of all weights that are prunable."""
        everything = self.total + self.unmasked_total
        return self.total / everything if everything else 1.0

    @property
    def overall_density(self) -> float:
        """Fraction of all weights, prunable and unmasked, remaining."""
        everything = self.total + self.unmasked_total
        return (self.remaining + self.unmasked_total) / everything if everything else 1.0

    def to_dict(self) -> dict:
        """Plain data: the rows, the totals and the shares."""

        def rows(selected):
            return [{**dataclasses.asdict(row), "shape": list(row.shape), "density": row.density}
                    for row in selected]

        return {
            "weights": rows(self.rows),
            "total": self.total,
            "remaining": self.remaining,
            "density": self.density,
            "unmasked": rows(self.unmasked),
            "unmasked_total": self.unmasked_total,
            "prunable_share": self.prunable_share,
            "overall_density": self.overall_density,
        }

    def __str__(self) -> str:
        header = ("weight", "shape", "total", "remaining", "density")

        def line(name, shape, total, remaining, density):
            return (name, shape, f"{total:,}", f"{remaining:,}", f"{density:.2%}")

        lines = [line(row.path, "x".join(map(str, row.shape)), row.total, row.remaining,
                      row.density) for row in self.rows]
        totals = [line("prunable", "", self.total, self.remaining, self.density)]
        if self.unmasked:
            totals.append(line(f"unmasked ({len(self.unmasked)} variables)", "",
                               self.unmasked_total, self.unmasked_total, 1.0))
            totals.append(line("all weights", "", self.total + self.unmasked_total,
                               self.remaining + self.unmasked_total, self.overall_density))
        widths = [max(len(r[i]) for r in [header, *lines, *totals]) for i in range(5)]

        def fmt(cells):
            first = cells[0].ljust(widths[0])
            rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:]))
            return "  ".join([first, *rest])

        rule = "-" * len(fmt(header))
        return "\n".join([fmt(header), rule, *map(fmt, lines), rule, *map(fmt, totals)])


def sparsity_report(model_or_masks) -> SparsityReport:
    """Counts of remaining weights per prunable weight, from a model or a mask dict.

    From a model, the report also counts the trainable weights that no mask
    covers (`unmasked`), so `overall_density` is the density of the whole model.

    Example:

    >>> report = sparsity_report(model)
    >>> report.density          # fraction of prunable weights remaining
    >>> report.overall_density  # fraction of all weights remaining
    >>> print(report)           # a table, one row per prunable weight and the totals
    """
    if isinstance(model_or_masks, Mapping):
        masks, unmasked = validate_masks(model_or_masks), ()
    else:
        masks = get_masks(model_or_masks)
        unmasked = tuple(
            WeightSparsity(v.path, tuple(v.shape), int(np.prod(v.shape)), int(np.prod(v.shape)))
            for v in unmasked_weights(model_or_masks)
        )
    return SparsityReport(
        tuple(
            WeightSparsity(path, tuple(mask.shape), int(mask.size), int(np.count_nonzero(mask)))
            for path, mask in masks.items()
        ),
        unmasked,
    )


def unmasked_weights(model) -> list:
    """The trainable variables of `model` that no mask covers, in model order."""
    masked = {id(entry.weight) for entry in prunable_variables(model).values()}
    return [v for v in model.trainable_weights if id(v) not in masked]


def unmasked_layers(model, skip=lambda layer: False) -> list:
    """`[(layer, weight count)]`: layers whose kernel-like weights stay dense.

    Each is a layer of `model` (of a nested model, not a layer inside another
    layer: a wrapper or a KerasHub block is named, not the layer inside it)
    holding a weight of two or more axes that no mask covers, counted with
    its other uncovered trainable weights. Biases, a masked layer's other
    weights, normalization layers and other one-axis weights, left dense by
    design, name no layer.

    Args:
        model: the model to look through.
        skip: `layer -> bool`, True for layers not to name (those `exclude=`
            left dense on purpose).
    """
    covered = {id(w) for layer in _keras.sublayers(model, include_self=True)
               if isinstance(layer, (MaskedLayer, *NOT_PRUNED)) for w in layer.weights}
    found, seen = [], set()
    stack = [model]
    while stack:
        layer = stack.pop()
        if id(layer) in seen or skip(layer):
            continue
        seen.add(id(layer))
        if isinstance(layer, keras.Model):
            stack.extend(reversed(_keras.children(layer)))
            continue
        dense = [w for w in layer.trainable_weights if id(w) not in covered]
        if any(kernel_like(w) for w in dense):
            found.append((layer, sum(int(np.prod(w.shape)) for w in dense)))
    return found


def warn_unmasked(model, skip=lambda layer: False) -> None:
    """Warns, naming each, about layers whose kernel-like weights no mask covers.

    Args:
        model: the model to check.
        skip: `layer -> bool`, True for layers the user left unmasked on
            purpose (`exclude=`): those are not named.
    """
    layers = unmasked_layers(model, skip)
    if not layers:
        return
    named = ", ".join(f"{layer.name!r} ({type(layer).__name__}, {count:,} weights)"
                      for layer, count in layers)
    warnings.warn(
        f"keras-lottery leaves these layers unmasked, so their weights stay dense and "
        f"are never pruned: {named}. keras-lottery masks a weight that its layer holds "
        "in an attribute of its own and reads from there; these hold theirs elsewhere "
        "(in a list, say). Make the layer masked with the `MaskedLayer` protocol "
        "(docs/layers.md), or pass it in `exclude=` to say it stays dense on purpose. "
        "`sparsity_report(model)` counts them as unmasked.",
        UserWarning,
        stacklevel=3,
    )


def compressed_size(model) -> dict:
    """How big `model`'s weights are on disk, plain and gzipped: `{"file_bytes", "gzip_bytes"}`.

    A masked model is stripped first (`keras_lottery.strip`): the plain model
    a user ships, its pruned weights stored as zeros. Its variables (no
    optimizer state) are written as one `.npz` file, the bytes of the weights
    and little else (an HDF5 weights file adds unused space, which only blurs
    the comparison), then gzipped, as tfmot's guide measures a pruned model.
    Zeros cost as much as any weight in the file and next to nothing once
    compressed, which is how a sparse model gets smaller on disk.
    """
    import gzip
    import os
    import shutil
    import tempfile

    from keras_lottery.masking.conversion import strip

    plain = strip(model) if masked_layers(model) else model
    arrays = {f"{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(plain.weights)}
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "weights.npz")
        np.savez(path, **arrays)
        with open(path, "rb") as source, gzip.open(path + ".gz", "wb", compresslevel=9) as out:
            shutil.copyfileobj(source, out)
        return {"file_bytes": os.path.getsize(path), "gzip_bytes": os.path.getsize(path + ".gz")}
