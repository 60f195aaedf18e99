"""Dynamic sparse training inside one `fit`: SET and RigL.

Both start from random masks at a fixed overall density (ERK layer
densities by default, as in the RigL paper) at the training's first step,
and every `update_every` steps until `end_step` drop the smallest-magnitude
share of each layer's live weights (the share decaying from `drop_fraction`
to 0 on a cosine) and grow as many back elsewhere: at random (SET) or where
the dense gradient is largest (RigL). Grown weights start at zero; the
number of live weights of every layer never changes; a weight dropped and
grown back in the same update keeps its value.
"""

import keras
import numpy as np

from keras_lottery import checks
from keras_lottery.pruning import dynamic, rules
from keras_lottery.pruning.saliency import dense_gradients
from keras_lottery.runtime.evaluation import batches, to_numpy
from keras_lottery.sparse.mask_updates import MaskUpdate

BUDGETS = ("erk", "uniform")


class DynamicSparsity(MaskUpdate):
    """Base of `SET` and `RigL`; subclasses give the grow scores (`grow_scores`).

    Args:
        density: overall share of the chosen layers' weights kept live, in (0, 1).
        budget: `"erk"` (Erdős-Rényi-Kernel layer densities, the default) or
            `"uniform"` (every layer at `density`).
        drop_fraction: share of live weights dropped at the first update,
            decaying to 0 at `end_step` on a cosine. Defaults to 0.3.
        update_every: steps between updates (ΔT). Defaults to 100.
        end_step: no update from this step on. Defaults to 3/4 of the
            training's steps (the RigL paper's), where `fit` knows them.
        layers: the masked layers to train sparse; defaults to all.
        seed: seed of the random masks (and SET's growth), drawn anew at
            each update from `(seed, step)`, so a resumed training draws
            what it would have drawn. Defaults to 0.
        verbose: 1 prints each update. Defaults to 0.
    """

    def __init__(self, density: float, budget: str = "erk", drop_fraction: float = 0.3,
                 update_every: int = 100, end_step: int | None = None, layers=None,
                 seed: int = 0, verbose: int = 0):
        super().__init__(layers, verbose)
        self.density = checks.fraction("density", density)
        self.budget = checks.choice("budget", budget, BUDGETS)
        self.drop_fraction = checks.fraction("drop_fraction", drop_fraction)
        self.update_every = checks.integer("update_every", update_every, 1)
        self.end_step = checks.integer("end_step", end_step, 1, none=True)
        self.seed = checks.integer("seed", seed, 0)

    def check_training(self, model, steps):
        shapes = {p: tuple(self._prunables[p].weight.shape) for p in self.paths}
        if self.budget == "erk":
            densities = rules.erk_densities(shapes, self.density)
        else:
            densities = {p: self.density for p in shapes}
        self.counts = {}
        for path, shape in shapes.items():
            size = int(np.prod(shape))
            count = rules.keep_count(size, densities[path])
            if count < 1:
                raise ValueError(
                    f"Expected a density every layer can hold: at least one live weight. "
                    f"Received density={self.density} with budget={self.budget!r}, which "
                    f"leaves layer {self._labels[path]!r} ({size} weights) at "
                    f"{densities[path]:.3g}, no weight: raise the density or leave the layer "
                    f"out with `layers=`.")
            self.counts[path] = count
        self.end = self.end_step
        if self.end is None:
            if steps is None:
                raise ValueError(
                    "Expected `end_step` for a training whose length `fit` does not know "
                    "(a dataset without a known size and no `steps_per_epoch`). Received "
                    "end_step=None.")
            self.end = max(1, (3 * steps) // 4)
        masks = {p: keras.ops.convert_to_numpy(self._prunables[p].mask) != 0
                 for p in self.paths}
        self.first_step = self._optimizer_step(model)
        # A new training, or a resumed one whose masks are not this density's yet:
        # random masks at its first step. A resumed one keeps its masks.
        self._draw = any(int(np.count_nonzero(masks[p])) != self.counts[p] for p in self.paths)

    def due(self, step):
        if self._draw and step == self.first_step:
            return True
        return step > 0 and step % self.update_every == 0 and step < self.end

    def drop_fraction_at(self, step: int) -> float:
        """The share of live weights dropped at `step` (cosine decay to 0 at `end_step`)."""
        return dynamic.cosine_fraction(self.drop_fraction, step, 0, self.end)

    def new_masks(self, step, weights, masks):
        if self._draw:
            # The first execution: random masks, whatever later step of it is due too
            # (dropping and growing weights that have not trained yet would mean nothing).
            self._draw = False
            shapes = {p: masks[p].shape for p in masks}
            densities = {p: self.counts[p] / masks[p].size for p in masks}
            # Seeded by the first step, not the due one: the same masks whatever
            # steps_per_execution is.
            drawn = dynamic.random_sparse_masks(shapes, densities, self._seed(self.first_step))
            return drawn, None
        return dynamic.drop_and_grow(weights, masks, self.drop_fraction_at(step),
                                     self.grow_scores(step, weights, masks))

    def grow_scores(self, step, weights, masks) -> dict:
        raise NotImplementedError

    def _seed(self, step):
        return [self.seed, step]


class SET(DynamicSparsity):
    """Sparse Evolutionary Training: drop the weakest live weights, grow as many at random.

    Args: those of `DynamicSparsity` (density, budget, drop_fraction,
    update_every, end_step, layers, seed, verbose).

    Example:

        model = keras_lottery.prunable(model)
        model.compile(...)
        model.fit(x, y, epochs=10, callbacks=[keras_lottery.SET(density=0.1)])

    Reference:
        Mocanu et al., "Scalable training of artificial neural networks with
        adaptive sparse connectivity inspired by network science", 2018.
    """

    def grow_scores(self, step, weights, masks):
        rng = np.random.default_rng([*self._seed(step), 1])
        drawn = {p: rng.random(masks[p].shape) for p in sorted(masks)}
        return {p: drawn[p] for p in masks}


class RigL(DynamicSparsity):
    """Rigged Lottery: drop the weakest live weights, grow where the dense gradient is largest.

    The dense gradient (every weight live, pruned ones at zero) is taken on
    `batch_size` training examples drawn at each update (with the model in
    inference mode), outside the compiled train step, through each backend's
    own autodiff.

    Args:
        density: overall share kept live, in (0, 1).
        data: training data for the gradient: `(x, y)` arrays, or a dataset
            of `(x, y)` batches (its next batch at each update).
        batch_size: examples per gradient, drawn at random from arrays.
            Defaults to 256.
        budget, drop_fraction, update_every, end_step, layers, seed,
            verbose: as for `SET` (see `DynamicSparsity`).

    Reference:
        Evci, Gale, Menick, Castro & Elsen, "Rigging the lottery: making all
        tickets winners", ICML 2020.
    """

    def __init__(self, density: float, data, batch_size: int = 256, budget: str = "erk",
                 drop_fraction: float = 0.3, update_every: int = 100,
                 end_step: int | None = None, layers=None, seed: int = 0, verbose: int = 0):
        super().__init__(density, budget=budget, drop_fraction=drop_fraction,
                         update_every=update_every, end_step=end_step, layers=layers,
                         seed=seed, verbose=verbose)
        if data is None:
            raise ValueError("Expected `data`, training examples for the dense gradient: "
                             "(x, y) arrays or a dataset. Received: data=None")
        self.data = data
        self.batch_size = checks.integer("batch_size", batch_size, 1)
        self._iterator = None

    def grow_scores(self, step, weights, masks):
        x, y = self._batch(step)
        grads = dense_gradients(self.model, x, y)
        return {p: np.abs(grads[p]) for p in masks}

    def _batch(self, step):
        if isinstance(self.data, (tuple, list)) and len(self.data) == 2:
            x, y = self.data
            size = len(keras.tree.flatten(x)[0])
            rng = np.random.default_rng([*self._seed(step), 2])
            chosen = np.sort(rng.choice(size, min(size, self.batch_size), replace=False))
            pick = lambda a: np.asarray(a)[chosen]  # noqa: E731
            return keras.tree.map_structure(pick, x), keras.tree.map_structure(pick, y)
        for _ in range(2):
            if self._iterator is None:
                self._iterator = batches(self.data, self.batch_size)
            batch = next(self._iterator, None)
            if batch is not None:
                x, y, _ = batch
                return keras.tree.map_structure(to_numpy, x), keras.tree.map_structure(to_numpy, y)
            self._iterator = None  # Start the dataset again.
        raise ValueError("Expected `data` with at least one batch. Received an empty dataset.")
