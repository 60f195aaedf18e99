"""What every callback that changes masks during `fit` shares: when, and how.

**When.** Masks change between two executions of the compiled train step,
never inside one (that would retrace). A callback decides for each
optimizer step `t` whether its masks update there (`due(t)`); with
`steps_per_execution = k`, an execution runs steps `[t, t + k)` at once
(`self.window`), and the masks update at its start, as the last step of that
window that is due asks (a schedule per layer: each layer's own last due
step). With `k = 1` that is exactly step `t`, before its forward pass, as in
tfmot. Steps count the optimizer's `iterations` (updates applied), read at
each epoch's start, so a resumed training (`BackupAndRestore`, a reloaded
`.keras` file) carries on its schedule where it stopped: the masks are
variables of the model and the step is the optimizer's, both saved with it.
An optimizer that has already trained (a dense pre-training) starts the
schedule at its count, not at 0.

**How.** New masks are written into the mask variables and the stored
weights are zeroed where pruned; the optimizer's slots of every changed
weight (momentum, Adam's moments, ...) are zeroed there too, and where a
weight grows back, so that pruned weights stay exactly zero and grown ones
start from zero. On JAX the model's variables live outside the model during
`fit`; they are reached through `self.model`, which brings them back and has
the next step take them up again.
"""

import warnings

import keras
import numpy as np

from keras_lottery import checks
from keras_lottery.masking.masks import layer_labels, prunable_variables


class MaskUpdate(keras.callbacks.Callback):
    """Base class: the masks of a masked model (`keras_lottery.prunable`)
    changed during `fit` at the steps `due` says, by `new_masks`.

    Args:
        layers: names of the masked layers to prune (as in `rates_for`:
            a layer's name, or its path where names repeat); the others
            stay as they are. Defaults to every masked layer.
        verbose: 1 prints each update. Defaults to 0.
    """

    def __init__(self, layers=None, verbose: int = 0):
        super().__init__()
        if layers is not None:
            if isinstance(layers, str) or not all(isinstance(n, str) for n in layers) or (
                    not layers):
                raise ValueError(f"Expected `layers` a non-empty list of layer names, or None "
                                 f"for all. Received: layers={layers!r}")
            layers = tuple(layers)
        self.layers = layers
        self.verbose = checks.verbose(verbose)

    # -- what a subclass defines ------------------------------------------------

    def due(self, step: int) -> bool:
        """Whether the masks update at optimizer step `step`."""
        raise NotImplementedError

    def new_masks(self, step: int, weights: dict, masks: dict) -> tuple[dict, dict | None]:
        """`(masks, grown)` at `step` from the chosen layers' `weights` and
        `masks` (`{path: array}`); `grown` marks weights that start from zero."""
        raise NotImplementedError

    def check_training(self, model, steps: int | None):
        """Checks that need the model and the training's length (`steps`,
        None when unknown), before the first step."""

    # -- the mechanism ----------------------------------------------------------

    def on_train_begin(self, logs=None):
        model = self.model
        variables = prunable_variables(model)  # Refuses a model without masks, naming prunable.
        labels = layer_labels(model)
        by_layer = {}
        for path, entry in variables.items():
            by_layer.setdefault(labels[id(entry.layer)], []).append(path)
        if self.layers is not None:
            unknown = sorted(set(self.layers) - set(by_layer))
            if unknown:
                raise ValueError(f"Expected `layers` among the masked layers {sorted(by_layer)}. "
                                 f"Received unknown names: {unknown}")
        names = self.layers if self.layers is not None else tuple(by_layer)
        self.paths = [p for p in variables if labels[id(variables[p].layer)] in names]
        self._prunables = variables
        self._labels = {p: labels[id(variables[p].layer)] for p in variables}
        self._steps_per_execution = int(getattr(model, "steps_per_execution", 1) or 1)
        self._epoch_steps = (self.params or {}).get("steps")
        self.updates = []  # (step, density of the chosen layers) at each update.
        self._checked = False
        self._last_step = -1

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self._optimizer_step(self.model)
        if not self._checked:
            # At the first epoch this training runs, after every `on_train_begin` (a
            # `BackupAndRestore` there may have restored the model and the step) and
            # before any step: the training ends `epochs - epoch` epochs from here.
            self._checked = True
            epochs = (self.params or {}).get("epochs")
            self.training_steps = None if not (epochs and self._epoch_steps) else (
                self._epoch_start + (epochs - epoch) * self._epoch_steps)
            self.check_training(self.model, self.training_steps)
            masks = [keras.ops.convert_to_numpy(self._prunables[p].mask) != 0 for p in self.paths]
            self._density = sum(int(np.count_nonzero(m)) for m in masks) / sum(
                m.size for m in masks)

    def on_train_batch_begin(self, batch, logs=None):
        first = self._epoch_start + batch
        length = self._steps_per_execution
        if self._epoch_steps:
            length = max(1, min(length, self._epoch_steps - batch))
        # Never a step twice: under a LossScaleOptimizer, steps skipped for non-finite
        # gradients do not count, so the count within an epoch can run ahead of the
        # optimizer's and fall back at the next epoch's start.
        first = max(first, self._last_step + 1)
        self.window = range(first, first + length)  # The steps this execution runs.
        step = next((t for t in reversed(self.window) if self.due(t)), None)
        if step is not None:
            self._last_step = step
            self.update(step)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["sparsity"] = 1.0 - self._density

    def update(self, step: int):
        """Recomputes the masks as at `step` and writes those that changed."""
        model = self.model  # Syncs the variables on JAX (see the module).
        weights = {p: keras.ops.convert_to_numpy(self._prunables[p].weight) for p in self.paths}
        masks = {p: keras.ops.convert_to_numpy(self._prunables[p].mask) != 0
                 for p in self.paths}
        new, grown = self.new_masks(step, weights, masks)
        grown = grown or {}
        slots = optimizer_slots(model.optimizer, [self._prunables[p].weight for p in self.paths],
                                model.trainable_variables)
        for path in self.paths:
            added = grown.get(path)
            if np.array_equal(new[path], masks[path]) and (added is None or not added.any()):
                continue
            keep = new[path] & ~added if added is not None else new[path]
            entry = self._prunables[path]
            entry.mask.assign(new[path].astype(keras.backend.standardize_dtype(entry.mask.dtype)))
            entry.weight.assign(weights[path] * keep)
            found = slots.get(path, ())
            if found:
                # Multiplied where they live: one transfer of `keep`, none of the slots.
                keep = keras.ops.convert_to_tensor(keep.astype(
                    keras.backend.standardize_dtype(found[0].dtype)))
                for slot in found:
                    slot.assign(keras.ops.multiply(slot, keep))
        self._density = sum(int(np.count_nonzero(new[p])) for p in self.paths) / sum(
            new[p].size for p in self.paths)
        self.updates.append((step, self._density))
        if self.verbose:
            print(f"{type(self).__name__}: step {step}, density {self._density:.4f}")

    def _optimizer_step(self, model):
        return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


def optimizer_slots(optimizer, weights, others=()) -> dict:
    """`{weight path: [slot variables]}`: the optimizer's state kept per weight.

    Keras names a slot made by `Optimizer.add_variable_from_reference` after
    its weight's path (`"<path with / as _>_<slot>"`, as that method
    documents) with the weight's shape; a slot goes to the weight with the
    longest such prefix among `weights` and `others` (the model's other
    trainable variables), so that `dense/kernel` does not take the slots of
    a `dense/kernel_2`. A `LossScaleOptimizer`'s slots are its inner
    optimizer's.
    """
    if optimizer is None:
        return {}
    optimizers = [optimizer, getattr(optimizer, "inner_optimizer", None)]
    variables = {id(v): v for o in optimizers if o is not None for v in o.variables}
    prefixes = {w.path.replace("/", "_") + "_": w for w in [*others, *weights]}
    wanted = {id(w) for w in weights}
    found = {}
    for variable in variables.values():
        matches = [p for p, w in prefixes.items() if variable.name.startswith(p)
                   and tuple(variable.shape) == tuple(w.shape)]
        if matches:
            owner = prefixes[max(matches, key=len)]
            if id(owner) in wanted:
                found.setdefault(owner.path, []).append(variable)
    return found


def warn_short(name, reached, step, target, steps):
    """Warns that a schedule stops short of its target within the training."""
    warnings.warn(
        f"{name} does not reach its target within this training's {steps} steps: its last "
        f"update, at step {step}, brings the pruned layers to sparsity {reached:.4g}, not "
        f"{target:.4g}. Train longer or end the schedule earlier.", stacklevel=3)
