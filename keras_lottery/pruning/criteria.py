"""Which weights a ticket keeps: pruning criteria as pure scoring functions.

Every criterion gives a score per weight, `{path: array}`, and pruning keeps
the highest (`pruning.score_prune`, `pruning.global_score_prune`). Those
scored after training (Zhou et al. 2019, "Deconstructing lottery tickets")
see the weights a round started from (`initial`: θ0, or the rewind point) and
ended at (`final`):

- `large_final`: |w_final|, the paper's magnitude pruning (the default);
- `large_init`: |w_initial|; in a one-shot search, magnitude pruning at
  initialization;
- `magnitude_increase`: |w_final| - |w_initial|;
- `movement`: |w_final - w_initial|, the distance a weight travelled;
- `random`: uniform noise, so the budget alone decides the masks.

Those scored at initialization, from the model's loss on a batch (SNIP,
GraSP) or from no data at all (SynFlow), live in `keras_lottery.pruning.saliency`;
their names are in `AT_INITIALIZATION`. `Criterion` names one with its
settings. Nothing here touches Keras.
"""

import dataclasses
from collections.abc import Mapping

import numpy as np

from keras_lottery import checks

AFTER_TRAINING = ("large_final", "large_init", "magnitude_increase", "movement", "random")
AT_INITIALIZATION = ("snip", "grasp", "synflow")
CRITERIA = AFTER_TRAINING + AT_INITIALIZATION


@dataclasses.dataclass(frozen=True)
class Criterion:
    """A criterion by name, with the settings of those scored at initialization.

    Args:
        name: one of `CRITERIA`.
        examples: SNIP and GraSP score on the first `examples` training
            examples (of arrays; of a dataset, its first batch). Defaults to 256.
        iterations: SynFlow prunes in this many steps to each density, the
            kept share shrinking exponentially, rescoring after each (its
            paper's 100). SNIP and GraSP score once. Defaults to 100.
        temperature: GraSP divides the logits by this before the loss (its
            paper's 200). Defaults to 200.
    """

    name: str = "large_final"
    examples: int = 256
    iterations: int = 100
    temperature: float = 200.0

    def __post_init__(self):
        checks.choice("criterion", self.name, CRITERIA)
        # Frozen: `object.__setattr__` is how a dataclass normalizes a field.
        for field in ("examples", "iterations"):
            object.__setattr__(self, field,
                               checks.integer(f"Criterion.{field}", getattr(self, field), 1))
        object.__setattr__(self, "temperature",
                           checks.positive("Criterion.temperature", self.temperature))

    @property
    def at_initialization(self) -> bool:
        """Whether it scores the untrained network (SNIP, GraSP, SynFlow)."""
        return self.name in AT_INITIALIZATION

    @property
    def needs_data(self) -> bool:
        """Whether scoring needs training examples (SNIP and GraSP do)."""
        return self.name in ("snip", "grasp")


def as_criterion(criterion) -> Criterion:
    """A `Criterion` from one, or from its name."""
    if isinstance(criterion, Criterion):
        return criterion
    if isinstance(criterion, str):
        return Criterion(criterion)
    raise ValueError(
        f"Expected `criterion` a name among {CRITERIA} or a `Criterion`. "
        f"Received: criterion={criterion!r}"
    )


def large_final(final: Mapping, initial: Mapping | None = None) -> dict:
    """|w_final|: keep the largest trained weights (the paper's criterion)."""
    return {p: np.abs(np.asarray(w, dtype=np.float64)) for p, w in final.items()}


def large_init(final: Mapping, initial: Mapping) -> dict:
    """|w_initial|: keep the weights that started largest."""
    return {p: np.abs(np.asarray(initial[p], dtype=np.float64)) for p in final}


def magnitude_increase(final: Mapping, initial: Mapping) -> dict:
    """|w_final| - |w_initial|: keep the weights that grew most."""
    return {
        p: np.abs(np.asarray(w, dtype=np.float64)) - np.abs(np.asarray(initial[p], np.float64))
        for p, w in final.items()
    }


def movement(final: Mapping, initial: Mapping) -> dict:
    """|w_final - w_initial|: keep the weights that moved most."""
    return {
        p: np.abs(np.asarray(w, dtype=np.float64) - np.asarray(initial[p], np.float64))
        for p, w in final.items()
    }


def random_scores(final: Mapping, initial: Mapping | None = None, seed: int = 0) -> dict:
    """Uniform noise in [0, 1): random pruning at whatever budget the scores meet."""
    rng = np.random.default_rng(seed)
    # Drawn in path order so the scores do not depend on dict order.
    drawn = {p: rng.random(np.shape(final[p])) for p in sorted(final)}
    return {p: drawn[p] for p in final}


SCORE_AFTER_TRAINING = {
    "large_final": large_final,
    "large_init": large_init,
    "magnitude_increase": magnitude_increase,
    "movement": movement,
}


def after_training_scores(name: str, final: Mapping, initial: Mapping, seed: int = 0) -> dict:
    """The scores of criterion `name` (one of `AFTER_TRAINING`)."""
    if name == "random":
        return random_scores(final, initial, seed)
    if name not in SCORE_AFTER_TRAINING:
        raise ValueError(
            f"Expected `name`, a criterion scored after training, among {AFTER_TRAINING}. "
            f"Received: name={name!r}"
        )
    return SCORE_AFTER_TRAINING[name](final, initial)


def inverted(scores: Mapping) -> dict:
    """The scores negated: pruning then removes what the criterion would keep."""
    return {p: -np.asarray(s) for p, s in scores.items()}


def signed_constant(masks: Mapping, start: Mapping) -> dict:
    """Zhou et al.'s signed-constant reinitialization of the kept weights.

    Each kept weight becomes sign(w) * std of its layer's starting weights
    (all of them, pruned or not); pruned ones are zero.

    Args:
        masks: `{path: bool array}`.
        start: `{path: array}`, the weights the ticket would start from.
    """
    new = {}
    for path, mask in masks.items():
        weights = np.asarray(start[path])
        new[path] = (np.sign(weights) * weights.std() * mask).astype(weights.dtype)
    return new
