"""What a search checks before any training: the model it is given, and
settings that only the model or the data can tell wrong.

Each raises `ValueError` naming the argument, what was expected and what
was received; `settings.check_settings` checks the settings alone.
"""

import keras
import numpy as np

from keras_lottery.pruning import planning

from keras_lottery.search import state
from keras_lottery.masking.conversion import prunable
from keras_lottery.runtime.evaluation import EVALUATION_BATCH, batches, evaluate
from keras_lottery.masking.masks import masked_layers, prunable_variables
from keras_lottery.masking.sparsity import warn_unmasked
from keras_lottery.search.training import REINIT_OFFSET


def prepared_model(model, initial_weights):
    """The masked, compiled, built model to search, and its compile config."""
    if not isinstance(model, keras.Model):
        raise ValueError(f"Expected a Keras model. Received: {type(model).__name__}")
    if not model.built:
        raise ValueError(
            "Expected a built model. Received an unbuilt one: give it an `Input` "
            "or call it on a batch, so θ0 exists before training."
        )
    config = model.get_compile_config()
    if not config:
        raise ValueError(
            "Expected a compiled model. Received an uncompiled one: call "
            "`model.compile(optimizer, loss, metrics)` first; each round "
            "trains with a fresh optimizer of that configuration."
        )
    optimizer = model.optimizer
    steps = int(keras.ops.convert_to_numpy(optimizer.iterations)) if optimizer.built else 0
    if steps and initial_weights != "current":
        raise ValueError(
            "Expected an untrained model: its weights become θ0, the weights tickets "
            f"rewind to. Received a model whose optimizer has taken {steps} steps. Build "
            "and compile a new model, or pass `initial_weights='current'` to search "
            "tickets of these (pretrained) weights on purpose."
        )
    if not masked_layers(model):
        try:
            model = prunable(model)  # Warns of layers it leaves unmasked.
        except ValueError as error:
            raise ValueError(
                f"Expected a model with prunable layers. Received none that can be "
                f"converted: {error}"
            ) from None
        model.compile_from_config(config)
        if not masked_layers(model):
            raise ValueError(
                "Expected a model with prunable layers (those with a twin in "
                "`keras_lottery.layers.MASKED_TWINS`). Received a model with none."
            )
    else:
        warn_unmasked(model)
        if steps:
            model.compile_from_config(config)  # Pretrained: start from a new optimizer.
    prunable_variables(model)  # Checks built masks and unique paths.
    return model, config


def check_plan(rates, initial_masks, budget, one_shot, target_density):
    """The ladder can go where it is asked: one rate for a global or ERK
    budget, targets below the model's density and above what layers with
    rate 0 keep."""
    if budget != "uniform":
        planning.global_rate(rates, budget)
    start = planning.densities(initial_masks)
    sizes = {p: m.size for p, m in initial_masks.items()}
    overall = sum(start[p] * sizes[p] for p in sizes) / sum(sizes.values())
    floor = planning.one_shot_floor(rates, sizes, start)
    for name, targets in (("one_shot", one_shot), ("target_density", target_density)):
        if targets is None:
            continue
        lowest, highest = (min(targets), max(targets)) if name == "one_shot" else (targets,) * 2
        if lowest <= floor:
            raise ValueError(
                f"Expected `{name}` above {floor:.4f}, the share of weights kept in layers "
                f"with rate 0, which no budget prunes. Received: {name}={targets!r}"
            )
        if highest >= overall:
            raise ValueError(
                f"Expected `{name}` below the model's density, {overall:.4f}. "
                f"Received: {name}={targets!r}"
            )


def check_structured_plan(plan, rates, initial_masks, one_shot, target_density):
    """With a structure, targets above the lowest density its units, N:M runs
    or blocks can reach (a group keeps one unit; N:M stops at N of M)."""
    from keras_lottery.structured.unit_masks import lowest_density

    floor = lowest_density(plan, initial_masks, rates)
    for name, targets in (("one_shot", one_shot), ("target_density", target_density)):
        if targets is not None and (min(targets) if name == "one_shot" else targets) < (
                floor - 1e-9):
            raise ValueError(
                f"Expected `{name}` at or above {floor:.4f}, the lowest density this structure can "
                f"reach (one unit per group, N of every M, one block, one weight per other "
                f"layer). Received: {name}={targets!r}"
            )


def check_eval_every(eval_every, compile_config):
    steps = compile_config.get("steps_per_execution") or 1
    if eval_every and eval_every % steps:
        raise ValueError(
            f"Expected `eval_every` to be a multiple of steps_per_execution={steps}. "
            f"Received: eval_every={eval_every}"
        )


def check_data(name, x, y=None, sample_weight=None):
    """Array data that fit would choke on, or train on silently wrong, refused
    before any training: a missing `y`, lengths that differ, no examples,
    NaN or infinity. Datasets and loaders are taken as they come."""
    leaves = keras.tree.flatten(x)
    if not leaves or not all(hasattr(a, "shape") for a in leaves):
        return  # A dataset, a PyDataset or a loader: it is read only by `fit`.
    if y is None:
        raise ValueError(
            f"Expected `{name}` arrays with their labels. Received x of shape "
            f"{tuple(np.shape(x))} and y=None: pass `y`, or a dataset of (x, y) batches."
        )
    arrays = leaves + keras.tree.flatten(y)
    lengths = {tuple(np.shape(a))[0] if np.ndim(a) else None for a in arrays}
    if len(lengths) != 1:
        raise ValueError(
            f"Expected `{name}` arrays of one length. Received lengths {sorted(lengths, key=lambda n: (n is None, n or 0))}"
        )
    if lengths == {0}:
        raise ValueError(f"Expected `{name}` with at least one example. Received none.")
    for part, value in (("x", x), ("y", y), ("sample_weight", sample_weight)):
        for array in keras.tree.flatten(value):
            array = np.asarray(keras.ops.convert_to_numpy(array))
            if np.issubdtype(array.dtype, np.floating):
                bad = array.size - int(np.count_nonzero(np.isfinite(array)))
                if bad:
                    raise ValueError(
                        f"Expected finite `{name}` {part}. Received {bad} NaN or infinite "
                        "values: training would spread them to every weight."
                    )


def check_labels(model, name, y):
    """Sparse class labels outside the output layer's classes, refused before
    training (Keras finds them only in the loss, mid-epoch, on some backends)."""
    loss = model.get_compile_config().get("loss")
    if isinstance(loss, (list, tuple)) or (isinstance(loss, dict) and "class_name" not in loss):
        losses = list(loss.values()) if isinstance(loss, dict) else list(loss)
        if len(losses) != 1:
            return  # Several outputs: which labels go where is the loss's business.
        loss = losses[0]
    loss_name = loss if isinstance(loss, str) else loss.get("class_name", "") if isinstance(
        loss, dict) else ""
    config = loss.get("config") or {} if isinstance(loss, dict) else {}
    if "sparsecategorical" not in loss_name.lower().replace("_", "") or not hasattr(y, "shape"):
        return
    classes = model.outputs[0].shape[-1] if getattr(model, "outputs", None) else None
    labels = np.asarray(keras.ops.convert_to_numpy(y))
    if config.get("ignore_class") is not None:
        labels = labels[labels != config["ignore_class"]]
    if classes and labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(
            f"Expected `{name}` labels in [0, {classes}), the model's {classes} classes. "
            f"Received labels from {labels.min()} to {labels.max()}"
        )


def check_monitor(model, validation_data, monitor):
    """Evaluates one batch of the validation data: it fits the model, and
    `monitor` is among the quantities recorded."""
    # A batch of the size every evaluation uses: the compiled evaluation step
    # traced here is the one they reuse (on torch, each new batch size is
    # another `torch.compile`).
    first = next(batches(validation_data, EVALUATION_BATCH), None)
    if first is None:
        raise ValueError("Expected `validation_data` with at least one example. Received none.")
    try:
        names = evaluate(model, first[:2] if first[2] is None else first)
    except Exception as error:
        raise ValueError(
            f"Expected `validation_data` the model can be evaluated on. Received data "
            f"whose first batch fails: {type(error).__name__}: {error}"
        ) from error
    known = sorted(f"val_{name}" for name in names)
    if monitor not in known:
        raise ValueError(
            f"Expected `monitor` among the recorded quantities {known}. "
            f"Received: monitor={monitor!r}"
        )


def check_fresh_initialization(model, theta0, paths):
    """Fails now, not rounds later, if random_reinit cannot draw new weights."""
    fresh = state.fresh_initialization(model, REINIT_OFFSET)
    if any(np.array_equal(fresh[p], theta0[p]) for p in paths):
        raise ValueError(
            "Expected random_reinit to draw new weights. Received θ0 again: the "
            "layers' initializers have fixed seeds; use unseeded initializers."
        )


def check_rewind_step(k, x, fit, compile_config, name="rewind_step"):
    """With array data the dense run's length is known: check `rewind_step` fits."""
    steps = steps_per_epoch(x, fit)
    if not k or steps is None:
        return
    epochs = fit.get("epochs", 1)
    per_execution = compile_config.get("steps_per_execution") or 1
    if k > epochs * steps:
        raise ValueError(
            f"Expected `{name}` within the dense run of {epochs * steps} "
            f"iterations. Received: {name}={k}"
        )
    ends = {e * steps + min(j, steps) for e in range(epochs)
            for j in range(per_execution, steps + per_execution, per_execution)}
    if k not in ends:
        raise ValueError(
            f"Expected `{name}` at the end of an execution of "
            f"steps_per_execution={per_execution} steps ({steps} steps an epoch). "
            f"Received: {name}={k}; the nearest are "
            f"{sorted(ends, key=lambda e: abs(e - k))[:2]}"
        )


def steps_per_epoch(x, fit):
    """Optimizer steps per epoch of `fit(x, ...)`, or None when the data does not say."""
    if fit.get("steps_per_epoch"):
        return fit["steps_per_epoch"]
    if isinstance(x, keras.utils.PyDataset):
        return len(x)
    if hasattr(x, "shape") and hasattr(x, "__len__"):  # numpy and backend arrays
        return -(-len(x) // (fit.get("batch_size") or 32))
    return None
