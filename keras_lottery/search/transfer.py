"""Mask transfer: masks found on one task, trained on another.

Chen et al. (2020) carried masks found on one objective to other tasks,
and asked whether they beat random masks of the same densities. A search
given `transfer=[masks, ...]` trains, after its dense round 0, one round per
mask set from its own rewind weights (random θ0, or the pretrained weights
with `initial_weights="current"`); its `random_pruning` control draws random
masks of each transferred set's per-layer densities, `random_reinit` puts the
transferred masks on a fresh initialization.

A mask set is `{weight path: binary array}`, as `TicketSearch.masks(round)`
or `keras_lottery.search.run_directory.load_masks(directory)` give them. It may
cover part of the model (a new classification head is not in the source
model): the weights it leaves out keep the model's own masks.
"""

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np

from keras_lottery.pruning.rules import validate_masks


def as_mask_sets(transfer) -> tuple | None:
    """`transfer` as a tuple of mask dicts (one dict is one set); refuses other input."""
    if transfer is None:
        return None
    if isinstance(transfer, Mapping) and any(isinstance(v, Mapping) for v in transfer.values()):
        raise ValueError(
            "Expected `transfer` a mask dict {weight path: array} or a list of them. Received "
            f"a dict of mask dicts keyed {list(transfer)[:6]} (`load_masks` gives "
            "{round: masks}): pass `[found[r] for r in (1, 2, ...)]`, without round 0's dense "
            "masks."
        )
    if isinstance(transfer, Mapping):
        transfer = (transfer,)
    if isinstance(transfer, (str, bytes)) or not isinstance(transfer, Sequence) or not transfer:
        raise ValueError(
            "Expected `transfer` a mask dict {weight path: array} or a non-empty list of them "
            "(`TicketSearch.masks(round)`, `run_directory.load_masks(directory)`). Received: "
            f"transfer={_short(transfer)}"
        )
    for index, masks in enumerate(transfer):
        if not isinstance(masks, Mapping) or not masks:
            raise ValueError(
                f"Expected `transfer[{index}]` a non-empty dict {{weight path: array}}. "
                f"Received: {_short(masks)}"
            )
    return tuple(transfer)


def full_mask_sets(mask_sets, initial_masks) -> list:
    """Each set checked against the model and completed with its own masks.

    Raises:
        ValueError: a path that is not one of the model's prunable weights, a
            shape that differs from its weight's, or a value other than 0 and 1,
            naming the set and the path.
    """
    full = []
    for index, masks in enumerate(mask_sets):
        unknown = sorted(set(masks) - set(initial_masks))
        if unknown:
            raise ValueError(
                f"Expected `transfer[{index}]` keyed by the model's prunable weights "
                f"{sorted(initial_masks)}. Received unknown paths {unknown}. Name the layers "
                "as the source model's (a Functional model with named layers keeps its paths), "
                "and leave out the masks of layers the models do not share."
            )
        try:
            checked = validate_masks(masks, {p: initial_masks[p] for p in masks})
        except ValueError as error:
            raise ValueError(f"Expected `transfer[{index}]` to fit the model: {error}") from None
        full.append({**initial_masks, **checked})
    return full


def fingerprint(full_sets) -> tuple:
    """What a resume must match: each set's overall density and a hash of its masks,
    in the model's weight order and without paths (as the rest of the resume check:
    a model rebuilt with Keras' automatic layer names is the same model)."""
    described = []
    for masks in full_sets:
        digest = hashlib.sha256()
        for mask in masks.values():  # The model's order: completed from its own masks.
            mask = np.asarray(mask, dtype=bool)
            digest.update(str(mask.shape).encode())
            digest.update(np.packbits(mask).tobytes())
        kept = sum(int(m.sum()) for m in masks.values())
        total = sum(m.size for m in masks.values())
        described.append({"density": round(kept / total, 6), "sha256": digest.hexdigest()})
    return tuple(described)


def _short(value):
    text = repr(value)
    return text if len(text) <= 80 else f"{type(value).__name__} {text[:60]}..."
