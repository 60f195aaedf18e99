"""A physically smaller plain Keras model from one with structured masks.

A unit (neuron, filter, attention head) whose every reader's input slice is
masked to zero contributes nothing: `shrink` removes it from its producers,
from the BatchNormalization layers between, and from its readers' inputs,
and returns a plain Keras model with fewer units that predicts what the
masked model predicts. Units that are dead but cannot be removed (they feed
the outputs, or a layer that mixes channels) are kept, and said so.
"""

import dataclasses
import warnings

import keras
import numpy as np

from keras_lottery.conversion import strip
from keras_lottery.masks import get_masks
from keras_lottery.structured_pruning import alive_units, reduce_units
from keras_lottery.unit_groups import unit_groups


@dataclasses.dataclass
class GroupReport:
    """What `shrink` does to one unit group."""

    layers: list  # Producer layer names.
    kind: str  # "neurons", "filters" or "heads".
    units: int  # Before.
    kept: int  # After.
    dead_kept: int  # Units that read nothing but could not be removed.
    reason: str | None  # Why they could not.


def shrink_report(model) -> list[GroupReport]:
    """What `shrink(model)` would remove, group by group, and what it cannot."""
    return [report for _, _, report in _plan(model)]


def shrink(model, verbose: bool = True):
    """A new plain Keras model with the structurally pruned units removed.

    Removes every neuron, filter or attention head of a masked layer that no
    layer reads any more (its input slice masked to zero in every reader),
    together with its bias, its BatchNormalization parameters and the
    readers' input slices; residual additions lose the same channels on
    every operand. The rest of the model is `keras_lottery.strip(model)`:
    plain Keras layers holding `weight * mask`. `model` is not modified.

    Args:
        model: a Sequential or Functional model with masked layers, e.g. a
            ticket found with `TicketSearch(..., structure="filters")`.
        verbose: warn about dead units it had to keep. Defaults to True.

    Returns:
        A plain Keras model with the same predictions (to float rounding),
        which saves and loads without `keras_lottery`.

    Example:

    >>> small = keras_lottery.shrink(search.ticket(3))
    >>> small.count_params() < search.model.count_params()
    True
    """
    _check_graph_model(model)
    plans = _plan(model)
    cuts = {}  # layer name -> {"out": keep, "in": (keep, units), "channels": keep}
    for group, keep, report in plans:
        if report.kept == report.units:
            continue
        for layer in group.layers:
            cuts.setdefault(layer.name, {})["out"] = keep
        for layer in group.per_channel:
            cuts.setdefault(layer.name, {})["channels"] = keep
        for layer, _ in group.readers:
            if group.kind != "heads":
                cuts.setdefault(layer.name, {})["in"] = keep
    if verbose:
        for report in plans:
            report = report[2]
            if report.dead_kept:
                warnings.warn(
                    f"shrink kept {report.dead_kept} dead {report.kind} of {report.layers}: "
                    f"{report.reason}.", stacklevel=2)
    plain = strip(model)
    pairs = []

    def smaller(layer):
        cut = cuts.get(layer.name, {})
        config = layer.get_config()
        if "out" in cut:
            key = ("num_heads" if isinstance(layer, keras.layers.MultiHeadAttention)
                   else "units" if isinstance(layer, keras.layers.Dense) else "filters")
            config[key] = int(cut["out"].sum())
        new = layer.__class__.from_config(config)
        pairs.append((layer, new))
        return new

    small = keras.models.clone_model(plain, clone_function=smaller)
    for old, new in pairs:
        # Ops on symbolic tensors are cloned too; they hold no state.
        if isinstance(old, keras.layers.Layer) and old.built:
            _copy_cut(old, new, cuts.get(old.name, {}))
    return small


def _check_graph_model(model):
    # `keras.Model(inputs, outputs)` builds a `keras.Function` too; a subclassed model does not.
    if isinstance(model, keras.Sequential) or (
            isinstance(model, keras.Model) and isinstance(model, keras.Function)):
        return
    raise ValueError(
        "`shrink()` expected a Sequential or Functional Keras model, whose graph tells which "
        f"layers read which units. Received {type(model).__name__}: rebuild it from the plain "
        "Keras layers and copy the variables in with "
        "`keras_lottery.conversion.copy_variables(masked_layer, plain_layer)`.")


def _plan(model):
    """`[(group, keep, GroupReport)]` for every unit group of `model`."""
    masks = get_masks(model)
    plans = []
    for group in unit_groups(model):
        if group.consumers:
            read = np.zeros(group.units, dtype=bool)
            for piece in group.consumers:
                read |= reduce_units(masks[piece.path], piece.axis, group.units, np.any)
        else:
            read = np.ones(group.units, dtype=bool)
        names = [layer.name for layer in group.layers]
        if group.blocked or not group.consumers:
            # The walk stopped at the block, so its readers are not all known:
            # dead here means every weight of the unit is pruned (it emits its bias).
            keep = np.ones(group.units, dtype=bool)
            dead = int((~alive_units(group, masks)).sum())
            plans.append((group, keep, GroupReport(names, group.kind, group.units,
                                                   group.units, dead, group.blocked)))
            continue
        keep = read.copy()
        if not keep.any():
            keep[0] = True  # A layer of zero units is not a Keras layer.
        dead = int(keep.sum() - read.sum())
        plans.append((group, keep, GroupReport(
            names, group.kind, group.units, int(keep.sum()), dead,
            "a layer needs one unit" if dead else None)))
    return plans


def _copy_cut(old, new, cut):
    """Copies `old`'s variables into `new`, cut down to the kept units."""
    olds, news = old.variables, new.variables
    if len(olds) != len(news):
        raise ValueError(f"Expected the shrunk copy of layer {old.name!r} to hold the same "
                         f"variables. Received {len(olds)} and {len(news)}.")
    for source, target in zip(olds, news):
        value = keras.ops.convert_to_numpy(source)
        value = _cut_value(old, source, value, cut)
        if tuple(value.shape) != tuple(target.shape):
            raise ValueError(f"Expected {source.path} cut to {tuple(target.shape)}. Received "
                             f"{tuple(value.shape)}: a layer shrink does not know how to cut.")
        target.assign(value)


def _cut_value(layer, variable, value, cut):
    if not cut:
        return value
    name = variable.path.split("/")[-1]
    if isinstance(layer, keras.layers.MultiHeadAttention):
        keep = cut.get("out")
        if keep is None:
            return value
        part = variable.path.split("/")[-2]
        if part in ("query", "key", "value", "gate"):
            return np.compress(keep, value, axis=1 if name == "kernel" else 0)
        if part == "attention_output" and name == "kernel":
            return np.compress(keep, value, axis=0)
        return value
    if "channels" in cut:  # BatchNormalization: one value per channel.
        return np.compress(cut["channels"], value, axis=-1)
    if name == "kernel":
        if "out" in cut:
            value = np.compress(cut["out"], value, axis=-1)
        if "in" in cut:
            axis = 0 if isinstance(layer, keras.layers.Dense) else value.ndim - 2
            keep = cut["in"]
            value = np.compress(np.tile(keep, value.shape[axis] // len(keep)), value, axis=axis)
        return value
    if name == "bias" and "out" in cut:
        return np.compress(cut["out"], value, axis=-1)
    return value
