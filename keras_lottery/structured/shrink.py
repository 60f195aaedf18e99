"""A physically smaller plain Keras model from one with structured masks.

A unit (neuron, filter, attention head) whose every reader's input slice is
masked to zero contributes nothing: `shrink` removes it from its producers,
from the BatchNormalization layers between, and from its readers' inputs,
and returns a plain Keras model with fewer units that predicts what the
masked model predicts. Units that are dead but cannot be removed (they feed
the outputs, or a layer that mixes channels) are kept, and said so.
"""

import dataclasses
import itertools
import warnings

import keras
import numpy as np

from keras_lottery import _keras
from keras_lottery.masking.conversion import strip
from keras_lottery.masking.masks import get_masks, layer_labels, masked_layers
from keras_lottery.structured.unit_masks import alive_units, reduce_units
from keras_lottery.structured.unit_groups import unit_groups


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

    >>> small = keras_lottery.structured.shrink(search.ticket(3))
    >>> small.count_params() < search.model.count_params()
    True
    """
    _check_graph_model(model)
    plans = _plan(model)
    if verbose:
        for _, _, report in plans:
            if report.dead_kept:
                warnings.warn(
                    f"shrink kept {report.dead_kept} dead {report.kind} of {report.layers}: "
                    f"{report.reason}.", stacklevel=2)
    plain = strip(model)
    # The stripped copy's layers, in the model's order: cuts move onto them
    # by position (a copy may be built under other paths).
    olds = _keras.sublayers(model, include_self=True)
    news = _keras.sublayers(plain, include_self=True)
    same = {id(a): b for a, b in zip(olds, news, strict=True)}
    cuts = {id(same[key]): cut for key, cut in _cuts(plans).items()}
    pairs = []

    def smaller(layer):
        if not isinstance(layer, keras.layers.Layer):
            return layer.__class__.from_config(layer.get_config())  # An op (`a + b`).
        inside = {key: cuts[key] for key in map(id, _keras.sublayers(layer))
                  if key in cuts}
        if inside:  # A composite layer: rebuilt from its config at the smaller size.
            new = _smaller_composite(layer, inside)
            pairs.append((layer, new, _cut_finder(layer, inside)))
            return new
        cut = cuts.get(id(layer), {})
        if not cut:
            # Unchanged: the stripped copy's own layer, which nothing else holds
            # (and whose config need not rebuild it).
            return layer
        config = layer.get_config()
        if "out" in cut:
            key = ("num_heads" if isinstance(layer, keras.layers.MultiHeadAttention)
                   else "units" if isinstance(layer, keras.layers.Dense) else "filters")
            config[key] = int(cut["out"].sum())
        new = layer.__class__.from_config(config)
        pairs.append((layer, new, lambda variable, layer=layer, cut=cut: (layer, cut)))
        return new

    # Recursive: nested models (a KerasHub task's backbone) are cloned layer
    # by layer, and a layer called both inside and outside one (a tied
    # embedding) stays one layer.
    small = keras.models.clone_model(plain, clone_function=smaller, recursive=True)
    for old, new, cut_of in pairs:
        if old.built:
            _copy_cut(old, new, cut_of)
    return small


def _cuts(plans) -> dict:
    """`{id(layer): {"out": keep, "in": keep, "channels": keep}}` of every group shrunk."""
    cuts = {}
    for group, keep, report in plans:
        if report.kept == report.units:
            continue
        cuts.update(_group_cuts(group, keep, cuts))
    return cuts


def _group_cuts(group, keep, cuts=None) -> dict:
    """`cuts` (a new dict by default) with `group`'s units cut to `keep`."""
    cuts = {} if cuts is None else dict(cuts)
    for layer in group.layers:
        cuts.setdefault(id(layer), {})["out"] = keep
    for layer in group.per_channel:
        cuts.setdefault(id(layer), {})["channels"] = keep
    for layer, _ in group.readers:
        if group.kind != "heads":
            cuts.setdefault(id(layer), {})["in"] = keep
    return cuts


def _cut_finder(layer, cuts):
    """`variable -> (layer, cut)`: the layer whose cut a variable of `layer` takes."""
    found = {}
    for inner in _keras.sublayers(layer, include_self=True):
        if id(inner) in cuts:
            for variable in inner.variables:
                found[id(variable)] = (inner, cuts[id(inner)])
    return lambda variable: found.get(id(variable), (layer, {}))


def _smaller_composite(layer, cuts):
    """`layer`'s class from its config with its units cut as `cuts` says, or
    a ValueError saying why its config cannot express that.

    The config setting to change is found by value (a setting equal to the
    units' count, `intermediate_dim` of a KerasHub `TransformerEncoder`) and
    kept only if the rebuilt layer's every variable has the cut shape.
    """
    cut_of = _cut_finder(layer, cuts)
    masks = {id(p.mask) for inner in masked_layers(layer) for p in inner.get_prunable_weights()}
    expected = []
    for variable in layer.variables:
        if id(variable) not in masks:
            owner, cut = cut_of(variable)
            expected.append(_cut_value(owner, variable, np.zeros(variable.shape, "float32"),
                                       cut).shape)
    try:
        config = layer.get_config()
    except Exception as error:  # noqa: BLE001 - a config broken upstream (KerasHub's Llama).
        raise ValueError(f"the config of {layer.name!r} ({type(layer).__name__}) cannot be "
                         f"read ({type(error).__name__}: {error})") from None
    counts = {}
    for cut in cuts.values():
        if "out" in cut:
            counts[len(cut["out"])] = int(cut["out"].sum())
    choices = [[key for key, value in config.items()
                if type(value) is int and value == old] for old in counts]
    for keys in itertools.product(*choices):
        if len(set(keys)) != len(keys):
            continue
        trial = {**config, **{key: new for key, new in zip(keys, counts.values())}}
        try:
            new = type(layer).from_config(trial)
            new.build_from_config(layer.get_build_config())
        except Exception:  # noqa: BLE001 - this setting is not the one; try the next.
            continue
        if [tuple(v.shape) for v in new.variables] == [tuple(s) for s in expected]:
            return type(layer).from_config(trial)
    raise ValueError(
        f"the config of {layer.name!r} ({type(layer).__name__}) has no setting that gives "
        "it that many units with the rest of its shapes kept")


def _check_graph_model(model):
    # `keras.Model(inputs, outputs)` builds a `keras.Function` too; a subclassed model does not.
    if isinstance(model, keras.Sequential) or (
            isinstance(model, keras.Model) and isinstance(model, keras.Function)):
        return
    raise ValueError(
        "`shrink()` expected a Sequential or Functional Keras model, whose graph tells which "
        f"layers read which units. Received {type(model).__name__}: rebuild it from the plain "
        "Keras layers and copy the variables in with "
        "`keras_lottery.copy_variables(masked_layer, plain_layer)`.")


def _plan(model):
    """`[(group, keep, GroupReport)]` for every unit group of `model`."""
    masks = get_masks(model)
    labels = layer_labels(model)
    plans = []
    for group in unit_groups(model):
        if group.consumers:
            read = np.zeros(group.units, dtype=bool)
            for piece in group.consumers:
                read |= reduce_units(masks[piece.path], piece.axis, group.units, np.any)
        else:
            read = np.ones(group.units, dtype=bool)
        names = [labels[id(layer)] for layer in group.layers]
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
        reason = _why_composite_cannot(model, group, keep)
        if reason:
            keep = np.ones(group.units, dtype=bool)
        dead = int(keep.sum() - read.sum())
        plans.append((group, keep, GroupReport(
            names, group.kind, group.units, int(keep.sum()), dead,
            reason or ("a layer needs one unit" if dead else None))))
    return plans


def _graph_layers(model):
    """The layers of `model`'s graph and of its nested models' graphs, models left out."""
    found = []
    for layer in _keras.children(model):
        if isinstance(layer, keras.Model):
            found.extend(_graph_layers(layer))
        else:
            found.append(layer)
    return found


def _why_composite_cannot(model, group, keep):
    """Why the composite layer holding `group` (a KerasHub block) cannot be
    rebuilt without the units `keep` drops, or None (or not in one)."""
    if keep.all():
        return None
    producers = {id(layer) for layer in group.layers}
    outer = [layer for layer in _graph_layers(model)
             if producers & {id(inner) for inner in _keras.sublayers(layer)}]
    if not outer:
        return None
    try:
        _smaller_composite(outer[0], _group_cuts(group, keep))
    except ValueError as error:
        return str(error)
    return None


def _copy_cut(old, new, cut_of):
    """Copies `old`'s variables into `new`, each cut down to the kept units
    of the layer `cut_of(variable)` names."""
    olds, news = old.variables, new.variables
    if len(olds) != len(news):
        raise ValueError(f"Expected the shrunk copy of layer {old.name!r} to hold the same "
                         f"variables. Received {len(olds)} and {len(news)}.")
    for source, target in zip(olds, news):
        value = keras.ops.convert_to_numpy(source)
        layer, cut = cut_of(source)
        value = _cut_value(layer, source, value, cut)
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
