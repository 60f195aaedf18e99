"""Early-bird tickets (You et al., ICLR 2020): a structured mask drawn during
dense training, which stops it once the mask has settled.

At each epoch end the callback draws the mask that would keep `keep` of the
units of every unit group (by their norms, or by BatchNormalization |gamma|)
and measures how far it moved from the previous epoch's: the fraction of
units whose keep-or-remove decision changed (a normalized Hamming
distance). When the last `patience` distances are all below `threshold`, it
stops the training; `masks` is the early-bird ticket, ready for
`TicketSearch(..., transfer=[early_bird.masks])` to train as round 1.
"""

import keras
import numpy as np

from keras_lottery import checks
from keras_lottery.structured import unit_masks as structured_pruning
from keras_lottery.masking.masks import get_masks, prunable_variables
from keras_lottery.structured.structures import as_structure, plan


class EarlyBird(keras.callbacks.Callback):
    """Stops dense training when its structured mask stops changing.

    Args:
        structure: the units to draw, `"neurons"`, `"filters"`, `"units"`
            or `"heads"` (or a `keras_lottery.Structure`). Defaults to
            `"filters"`.
        keep: fraction of each unit group's units the mask keeps, in (0, 1).
            Defaults to 0.5.
        threshold: the distance (fraction of units that changed) below which
            two consecutive masks count as the same. Defaults to 0.1.
        patience: how many consecutive distances must be below `threshold`.
            Defaults to 3.
        score: `"l1"`, `"l2"` or `"bn_gamma"` (You et al.'s: |gamma| of the
            BatchNormalization after each unit). Defaults to the
            structure's (`"l1"`).
        stop: stop the training once the mask has settled. Defaults to True;
            False only records (`found_at`, `distances`).

    Attributes:
        distances: one per epoch after the first.
        masks: `{path: bool array}`: the early-bird ticket once `found_at`
            is set, until then the last mask drawn.
        found_at: the epoch (from 0) whose mask settled, or None.

    Example:

    >>> bird = EarlyBird("filters", keep=0.3)
    >>> model.fit(x, y, epochs=30, callbacks=[bird])
    >>> search = TicketSearch(model_again, x, y, transfer=[bird.masks])

    Reference:
        You et al., "Drawing early-bird tickets: towards more efficient
        training of deep networks", ICLR 2020.
    """

    def __init__(self, structure="filters", keep: float = 0.5, threshold: float = 0.1,
                 patience: int = 3, score: str | None = None, stop: bool = True):
        super().__init__()
        self.structure = as_structure(structure, score)
        if not self.structure.units:
            raise ValueError(
                f"Expected `structure` of units for an early-bird ticket: 'neurons', 'filters', "
                f"'units' or 'heads'. Received: structure={structure!r}")
        self.keep = checks.fraction("keep", keep)
        self.threshold = checks.fraction("threshold", threshold)
        self.patience = checks.integer("patience", patience, 1)
        self.stop = checks.boolean("stop", stop)

    def on_train_begin(self, logs=None):
        paths = prunable_variables(self.model)
        self._plan = plan(self.model, self.structure, {p: 1 - self.keep for p in paths})
        # Units only: every other weight keeps its mask (rate 0).
        self._rates = {p: 0.0 for p in paths}
        for group, rate, _ in self._plan.groups:
            self._rates.update({piece.path: rate for piece in group.producers})
        self._start = get_masks(self.model)
        self._units = structured_pruning.start_units(self._plan, self._start)
        self.distances, self.masks, self.found_at = [], None, None
        self._previous = None

    def on_epoch_end(self, epoch, logs=None):
        # Through `self.model`, which on JAX syncs the variables trained outside it.
        variables = prunable_variables(self.model)
        scores = {p: np.abs(keras.ops.convert_to_numpy(v.weight)) for p, v in variables.items()}
        gammas = {group.name: [np.abs(keras.ops.convert_to_numpy(bn.gamma))
                               for bn in group.per_channel if getattr(bn, "gamma", None)
                               is not None] for group, _, _ in self._plan.groups}
        masks = structured_pruning.structured_masks(
            self._plan, self._start, scores, self._rates,
            {p: float(np.mean(m)) for p, m in self._start.items()}, self._units, 1, gammas)
        if self.found_at is None:  # Once found, the ticket stays the one that settled.
            self.masks = masks
        kept = np.concatenate([structured_pruning.alive_units(group, masks)
                               for group, _, _ in self._plan.groups])
        if self._previous is not None:
            self.distances.append(float(np.mean(kept != self._previous)))
            recent = self.distances[-self.patience:]
            if self.found_at is None and len(recent) == self.patience and max(
                    recent) < self.threshold:
                self.found_at = epoch
                if self.stop:
                    self.model.stop_training = True
        self._previous = kept
        if logs is not None and self.distances:
            logs["early_bird_distance"] = self.distances[-1]
