"""Snapshots of a model's state by variable path: what rewinding restores.

A snapshot holds every model variable except the masks: weights, biases,
batch-norm statistics and random-seed states (so dropout replays the same
draws after a rewind). Never the optimizer. `model.get_weights()` would
include the masks and rewind them too, hence this module.
"""

import keras
import numpy as np

from keras_lottery.masking.masks import masked_layers


def state_variables(model) -> dict:
    """`{key: variable}` for every non-mask variable.

    Weights are keyed by path. Other state (seed-generator states) is keyed by
    name and position, `seed_generator_state#0`, ...: Keras numbers those
    paths per process, so two builds of one model would not match by path.
    """
    masks = {
        id(p.mask) for layer in masked_layers(model) for p in layer.get_prunable_weights()
    }
    weights = {id(w) for w in model.weights}
    found, others = {}, 0
    for variable in model.variables:
        if id(variable) in masks:
            continue
        if id(variable) in weights and variable.path not in found:
            found[variable.path] = variable
        else:
            found[f"{variable.name}#{others}"] = variable
            others += 1
    return found


def snapshot(model) -> dict[str, np.ndarray]:
    """`{key: array}` copies of every model variable except the masks."""
    return {
        key: np.array(keras.ops.convert_to_numpy(variable))
        for key, variable in state_variables(model).items()
    }


def restore(model, state: dict[str, np.ndarray]) -> None:
    """Assigns a `snapshot` back, after checking it matches the model exactly."""
    variables = state_variables(model)
    if set(state) != set(variables):
        raise ValueError(
            "Expected a snapshot of this model. Received one whose variables "
            f"differ: missing {sorted(set(variables) - set(state))}, "
            f"unexpected {sorted(set(state) - set(variables))}"
        )
    for key, variable in variables.items():
        if tuple(np.shape(state[key])) != tuple(variable.shape):
            raise ValueError(
                f"Expected {key!r} of shape {tuple(variable.shape)} in the "
                f"snapshot. Received shape {np.shape(state[key])}"
            )
    for key, variable in variables.items():
        variable.assign(state[key])


def fresh_initialization(model, seed: int) -> dict[str, np.ndarray]:
    """A snapshot of a new initialization of `model`, keyed like `snapshot(model)`.

    Drawn from the layers' own initializers by cloning the model under
    `seed`; the random-reinitialization control of the paper.
    """
    keras.utils.set_random_seed(seed)
    try:
        clone = keras.models.clone_model(model)
    except ValueError as error:
        raise ValueError(
            "Expected a Sequential or Functional model for a fresh "
            f"initialization (random_reinit). Received {type(model).__name__}: {error}"
        ) from None
    own, fresh = state_variables(model), list(state_variables(clone).values())
    if len(fresh) != len(own) or any(
        tuple(a.shape) != tuple(b.shape) for a, b in zip(own.values(), fresh)
    ):
        raise ValueError(
            f"Expected a clone of {model.name} with the same variables. Received "
            "different ones: build the model from layers whose config rebuilds it."
        )
    return {
        key: np.array(keras.ops.convert_to_numpy(variable))
        for key, variable in zip(own, fresh)
    }
