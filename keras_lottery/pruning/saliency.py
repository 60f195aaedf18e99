"""Pruning at initialization: SNIP, GraSP and SynFlow scores of an untrained model.

As Frankle et al. (2021, "Pruning neural networks at initialization: why
are we missing the mark?") compare them, each scores every prunable weight
of the network as it is now (higher is kept):

- SNIP (Lee et al. 2019): |g * w|, g the gradient of the compiled loss on a
  batch;
- GraSP (Wang et al. 2020): w * (H g), H the Hessian of the loss, with the
  output layers' pre-activations divided by a temperature; pruning the lowest keeps the weights whose
  removal would most reduce gradient flow. Its paper prunes the highest
  `-w * (H g)`, the same ranking;
- SynFlow (Tanaka et al. 2020): (dR/dw) * w with every weight replaced by
  |w| and R the sum of the output layers' pre-activations (a softmax
  removed) for an all-ones input; no data. It is meant to be applied
  iteratively (`prune_at_initialization`).

The model is evaluated in inference mode (no dropout, batch normalization on
its moving statistics) and none of its variables change: the weights and
masks scored are given through a `keras.StatelessScope`. Gradients come from
`keras_lottery.runtime.autodiff`.
"""

from collections.abc import Mapping

import contextlib

import keras
import numpy as np

from keras_lottery import checks
from keras_lottery.runtime import autodiff

from keras_lottery.pruning import planning, rules as pruning
from keras_lottery.pruning.criteria import Criterion, as_criterion, inverted
from keras_lottery.runtime.evaluation import batches, to_numpy
from keras_lottery.masking.masks import get_masks, get_weights, prunable_variables, weight_infos


def snip_scores(model, x, y, masks: Mapping | None = None) -> dict:
    """|g * w| for every prunable weight, g the gradient of the compiled loss on `(x, y)`.

    Args:
        model: a compiled model with masked layers.
        x, y: a batch of training data (arrays).
        masks: `{path: mask}` to score under; defaults to the model's own.
    """
    weights = get_weights(model)
    _, grads = _loss_gradient(model, x, y, masks, weights)
    return {p: np.abs(grads[p] * weights[p]).astype(np.float64) for p in weights}


def grasp_scores(model, x, y, masks: Mapping | None = None, temperature: float = 200.0) -> dict:
    """w * (H g) for every prunable weight (keep the highest; see the module).

    Args:
        model: a compiled model with masked layers. The temperature divides
            the pre-activations of its masked output layers (before their
            softmax, if they have one); where the output layers are not
            known (a subclassed model not yet called), the model's outputs,
            which must then be logits.
        x, y: a batch of training data (arrays).
        masks: `{path: mask}` to score under; defaults to the model's own.
        temperature: divides the outputs before the loss. Defaults to 200.
    """
    weights = get_weights(model)
    fn, paths = _loss_fn(model, x, y, masks, temperature)
    product = autodiff.hessian_gradient_product(fn, [weights[p] for p in paths])
    return {p: (weights[p] * h).astype(np.float64) for p, h in zip(paths, product)}


def synflow_scores(model, masks: Mapping | None = None, input_shape=None) -> dict:
    """(dR/dw) * w with |w| everywhere and an all-ones input; R the outputs' sum.

    Args:
        model: a model with masked layers. Its masked output layers' own
            activation (a softmax) is left out; a normalization after them
            (an `Activation("softmax")` layer) would make R constant, and
            is refused.
        masks: `{path: mask}` to score under; defaults to the model's own.
        input_shape: one example's shape, for a model without `Input`s.
    """
    masks = _masks_for(model, masks)
    weights = get_weights(model)
    prunables = prunable_variables(model)
    paths = list(prunables)
    inputs = _ones_input(model, input_shape)
    # Every other trainable variable (biases, normalization) as |value| too.
    others = [v for v in model.trainable_variables
              if id(v) not in {id(prunables[p].weight) for p in paths}]
    fixed = [(prunables[p].mask, masks[p]) for p in paths] + [
        (v, np.abs(keras.ops.convert_to_numpy(v))) for v in others]

    def total_output(tensors):
        mapping = [(prunables[p].weight, t) for p, t in zip(paths, tensors)] + fixed
        with keras.StatelessScope(state_mapping=mapping), _output_activation(
                model, lambda activation: keras.activations.linear):
            outputs = model(inputs, training=False)
        return sum(keras.ops.sum(keras.ops.cast(o, "float32"))
                   for o in keras.tree.flatten(outputs))

    absolute = [np.abs(weights[p]) for p in paths]
    total, grads = autodiff.gradient(total_output, absolute)
    scores = {p: (g * a).astype(np.float64) for p, g, a in zip(paths, grads, absolute)}
    # Through ReLUs the scores of a layer sum to R; a softmax makes R constant
    # and the scores rounding noise (exact zeros on some backends, not all).
    # R = 0 is a network already cut in two (inverted scores do that): all
    # its scores are rightly zero.
    total = abs(float(total))
    if total > 0 and sum(float(s.sum()) for s in scores.values()) <= 1e-4 * total:
        raise ValueError(
            "Expected SynFlow scores that are not all zero. Received all zeros: does the "
            "model end in a softmax or a normalization? SynFlow needs its logits."
        )
    return scores


def dense_gradients(model, x, y) -> dict:
    """The gradient of the compiled loss on `(x, y)` for every prunable weight as if
    every weight were live: masks at one, pruned weights at zero. Where a
    weight is pruned, the gradient it would get if it grew back (RigL's
    grow score, Evci et al. 2020).
    """
    weights, masks = get_weights(model), get_masks(model)
    live = {p: weights[p] * masks[p] for p in weights}
    _, grads = _loss_gradient(model, x, y, {p: np.ones(m.shape, bool) for p, m in masks.items()},
                              live)
    return grads


def scores_at_initialization(model, criterion, masks=None, data=None) -> dict:
    """The scores of `criterion` ("snip", "grasp", "synflow") of `model` as it is now.

    Args:
        model: a compiled model with masked layers.
        criterion: a name or a `Criterion`.
        masks: `{path: mask}` to score under; defaults to the model's own.
        data: `(x, y)` arrays or a dataset; SNIP and GraSP take the first
            `criterion.examples` examples (of a dataset, its first batch).
    """
    criterion = as_criterion(criterion)
    if criterion.needs_data:
        x, y = scoring_batch(data, criterion)
        if criterion.name == "snip":
            return snip_scores(model, x, y, masks)
        return grasp_scores(model, x, y, masks, criterion.temperature)
    if criterion.name == "synflow":
        return synflow_scores(model, masks, _example_shape(data))
    raise ValueError(
        f"Expected a criterion scored at initialization, snip, grasp or synflow. "
        f"Received: criterion={criterion.name!r}"
    )


def prune_at_initialization(model, criterion, density: float, rates, data=None,
                            budget: str = "uniform", masks=None, invert: bool = False) -> dict:
    """Masks of overall `density`, pruned from the untrained `model` by `criterion`.

    SNIP and GraSP score once; SynFlow scores `criterion.iterations` times,
    pruning each time to a density shrinking exponentially to `density`.

    Args:
        model: a compiled model with masked layers, at its initialization.
        criterion: a name or a `Criterion` of `keras_lottery.pruning.criteria.AT_INITIALIZATION`.
        density: the overall fraction of prunable weights to keep, in (0, 1).
        rates: `{path: rate}` from `keras_lottery.rates_for`: a layer with
            rate 0 is not pruned; `"uniform"` shares `density` among layers as
            these rates would.
        data: `(x, y)` for SNIP and GraSP (see `scores_at_initialization`).
        budget: one of `planning.BUDGETS`. Defaults to `"uniform"`.
        masks: the masks to prune from; defaults to the model's own.
        invert: prune the highest scores instead (an ablation).
    """
    criterion = as_criterion(criterion)
    density = checks.fraction("density", density)
    budget = checks.choice("budget", budget, planning.BUDGETS)
    invert = checks.boolean("invert", invert)
    masks = _masks_for(model, masks)
    steps = criterion.iterations if criterion.name == "synflow" else 1
    start = pruning.density(masks)
    for step in range(1, steps + 1):
        scores = scores_at_initialization(model, criterion, masks, data)
        if invert:
            scores = inverted(scores)
        target = start * (density / start) ** (step / steps)
        masks = planning.one_shot_masks(masks, scores, rates, target, budget)
    return masks


def scoring_batch(data, criterion: Criterion):
    """The first `criterion.examples` examples of `data`, as numpy."""
    if data is None:
        raise ValueError(
            f"Expected training data for criterion {criterion.name!r}: it scores "
            "weights by the loss on a batch. Received none."
        )
    x, y, _ = next(iter(batches(data, criterion.examples)))
    return keras.tree.map_structure(to_numpy, x), keras.tree.map_structure(to_numpy, y)


def _loss_fn(model, x, y, masks, temperature=None):
    masks = _masks_for(model, masks)
    prunables = prunable_variables(model)
    paths = list(prunables)
    fixed = [(prunables[p].mask, masks[p]) for p in paths]

    def cooled(activation):
        return lambda z: activation(z / temperature)

    def loss(tensors):
        mapping = [(prunables[p].weight, t) for p, t in zip(paths, tensors)] + fixed
        with keras.StatelessScope(state_mapping=mapping):
            if temperature is None:
                predictions = model(x, training=False)
            else:
                with _output_activation(model, cooled) as found:
                    predictions = model(x, training=False)
                if not found:
                    predictions = keras.tree.map_structure(lambda o: o / temperature,
                                                           predictions)
            return model.compute_loss(x=x, y=y, y_pred=predictions, training=False)

    return loss, paths


def _loss_gradient(model, x, y, masks, weights):
    fn, paths = _loss_fn(model, x, y, masks)
    value, grads = autodiff.gradient(fn, [weights[p] for p in paths])
    return value, dict(zip(paths, grads))


@contextlib.contextmanager
def _output_activation(model, replace):
    """Gives the masked output layers `replace(activation)` as their activation
    while scoring; yields whether there were any."""
    prunables = prunable_variables(model)
    layers = {id(prunables[p].layer): prunables[p].layer
              for p, info in weight_infos(model).items()
              if info.is_output and hasattr(prunables[p].layer, "activation")}
    saved = {key: layer.activation for key, layer in layers.items()}
    try:
        for key, layer in layers.items():
            layer.activation = replace(saved[key])
        yield bool(layers)
    finally:
        for key, layer in layers.items():
            layer.activation = saved[key]


def _masks_for(model, masks):
    current = get_masks(model)
    if masks is None:
        return current
    missing = sorted(set(current) - set(masks))
    if missing:
        raise ValueError(
            f"Expected `masks` to hold a mask for every prunable weight. Received none for "
            f"{missing}"
        )
    return {p: np.asarray(masks[p]).astype(bool) for p in current}


def _ones_input(model, input_shape):
    try:
        specs = [tuple(i.shape) for i in model.inputs]
    except (AttributeError, ValueError):
        specs = None
    if specs:
        ones = [np.ones((1,) + s[1:], np.float32) for s in specs]
        return ones[0] if len(ones) == 1 else ones
    if input_shape is None:
        raise ValueError(
            "Expected `input_shape` for SynFlow on a model without `Input`s "
            "(a subclassed model). Received none."
        )
    return np.ones((1,) + tuple(input_shape), np.float32)


def _example_shape(data):
    if data is None:
        return None
    x, _, _ = next(iter(batches(data, 1)))
    return tuple(np.shape(keras.tree.flatten(x)[0])[1:])
