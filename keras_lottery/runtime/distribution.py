"""What a search needs to know about running on several devices.

Keras spreads training itself: on JAX through `keras.distribution`
(`DataParallel`, `ModelParallel`), on TensorFlow through the
`tf.distribute` strategy whose scope the model was built in. Nothing here
trains: this module finds which engine a model runs on, how many replicas
share a batch, and refuses what the backend cannot do before any training.
The package's backend-specific multi-device code lives here.
"""

import contextlib

import keras

from keras_lottery import _keras


def active_distribution():
    """The active `keras.distribution.Distribution`, else None."""
    return keras.distribution.distribution()


def tf_strategy(model=None):
    """The `tf.distribute` strategy of more than one replica that `model` was
    built under (else the one whose scope is active), on TensorFlow; else None."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    # Keras' TensorFlow trainer keeps the strategy of the scope the model was made in.
    strategy = getattr(model, "distribute_strategy", None) or tf.distribute.get_strategy()
    return strategy if strategy.num_replicas_in_sync > 1 else None


def scope_of(model):
    """The scope of `model`'s tf.distribute strategy, else a no-op: the losses
    and predictions `evaluation` computes outside `fit` then split as `fit` does."""
    strategy = tf_strategy(model)
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def batch_replicas(model=None) -> int:
    """How many ways a global batch is split: 1 on one device."""
    distribution = active_distribution()
    if distribution is not None:
        mesh = distribution.device_mesh
        name = getattr(distribution, "batch_dim_name", None)
        if name in mesh.axis_names:
            return int(mesh.shape[list(mesh.axis_names).index(name)])
        return 1
    strategy = tf_strategy(model)
    return int(strategy.num_replicas_in_sync) if strategy is not None else 1


def describe(model=None) -> dict:
    """What trains `model`: `{"engine", "replicas", "devices"}`; engine None on one device."""
    distribution = active_distribution()
    if distribution is not None:
        return {"engine": type(distribution).__name__, "replicas": batch_replicas(),
                "devices": int(distribution.device_mesh.devices.size)}
    strategy = tf_strategy(model)
    if strategy is not None:
        return {"engine": type(strategy).__name__, "replicas": batch_replicas(model),
                "devices": int(strategy.num_replicas_in_sync)}
    return {"engine": None, "replicas": 1, "devices": 1}


def process_index() -> int:
    """This process's place among the processes of a multi-host JAX run; 0 otherwise."""
    if keras.backend.backend() != "jax":
        return 0
    import jax

    return int(jax.process_index())


def process_count() -> int:
    """The processes of a multi-host JAX run (`keras.distribution.initialize`); 1 otherwise."""
    if keras.backend.backend() != "jax":
        return 1
    import jax

    return int(jax.process_count())


def check_supported() -> None:
    """Refuses a `keras.distribution` on a backend that does not run it."""
    backend = keras.backend.backend()
    distribution = active_distribution()
    if distribution is None or backend == "jax":
        return
    # Keras 3 runs `keras.distribution` on JAX only: its TensorFlow trainer
    # trains on one device regardless, and torch has no device list for it.
    instead = ("a tf.distribute strategy: build and compile the model inside "
               "`tf.distribute.MirroredStrategy().scope()`" if backend == "tensorflow"
               else "the JAX backend (KERAS_BACKEND=jax) for several devices, or one "
               "device per process (one seed each, `keras-lottery run --seeds`)")
    raise ValueError(
        f"Expected no `keras.distribution` on the {backend} backend: Keras runs it on JAX "
        f"only. Received {type(distribution).__name__}; use {instead}, or call "
        "`keras.distribution.set_distribution(None)`."
    )


def check_batches(x, fit: dict) -> None:
    """Refuses training batches that do not split evenly over `keras.distribution`'s replicas.

    JAX shards every batch along the batch axis and fails inside `fit` on one
    that does not divide, the last short batch of a pass over array data
    included (with `steps_per_epoch` too, which reads the arrays on across
    epochs). A dataset's batches cannot be seen before training: batch it
    evenly (`drop_remainder=True`). With several processes each passes its
    own batch, shared by its own devices. (A tf.distribute strategy splits
    uneven batches itself.)
    """
    distribution = active_distribution()
    if distribution is None:
        return
    replicas = batch_replicas() // process_count()
    if replicas <= 1:
        return
    engine = type(distribution).__name__
    batch_size = fit.get("batch_size")
    if batch_size is None and _is_array(x):
        batch_size = 32  # `fit`'s default for arrays.
    if batch_size is not None and batch_size % replicas:
        raise ValueError(
            f"Expected `batch_size` divisible by the {replicas} replicas of {engine} on this "
            f"process, which each take an equal share of every batch. Received: "
            f"batch_size={batch_size}"
        )
    if batch_size and _is_array(x):
        examples = len(keras.tree.flatten(x)[0])
        last = examples % batch_size
        if last % replicas:
            raise ValueError(
                f"Expected `x` to leave a last batch divisible by the {replicas} replicas of "
                f"{engine}. Received {examples} examples in batches of {batch_size}: the last "
                f"has {last}. Drop {last % replicas} of them, or pick another batch_size."
            )


def _is_array(x):
    leaves = keras.tree.flatten(x) if x is not None else []
    return bool(leaves) and all(hasattr(leaf, "shape") and hasattr(leaf, "__len__")
                                for leaf in leaves)


def predict_on_batch(model, x):
    """`model.predict_on_batch(x)`, also under a tf.distribute strategy.

    There Keras' `predict_on_batch` runs the whole batch on every replica
    and returns their outputs joined (twice the rows on two replicas), so
    the batch goes through `predict`, which splits it over the replicas.
    """
    if tf_strategy(model) is None:
        return model.predict_on_batch(x)
    size = len(keras.tree.flatten(x)[0])
    return model.predict(x, batch_size=size, verbose=0)


def unscaled_loss(value: float) -> float:
    """A loss computed in a tf.distribute scope, as one device gives it.

    Keras divides every loss by the replicas in sync there (their gradients
    are then summed); `model.evaluate` multiplies it back, and so does this.
    """
    strategy = tf_strategy()
    return value * strategy.num_replicas_in_sync if strategy is not None else value


@contextlib.contextmanager
def data_parallel(devices=None):
    """A scope in which a model is built, compiled and searched over several devices.

    The engine is the backend's own: `keras.distribution.DataParallel` on JAX
    (weights and masks replicated, each batch split over the devices) and
    `tf.distribute.MirroredStrategy` on TensorFlow. Keras has no multi-device
    trainer for torch, so there it is refused with what to use instead.

    Args:
        devices: device names, e.g. `["gpu:0", "gpu:1"]` (JAX) or
            `["/gpu:0", "/gpu:1"]` (TensorFlow); defaults to every GPU, else
            every CPU device on JAX (see `--xla_force_host_platform_device_count`)
            and the one CPU on TensorFlow (name logical CPU devices to use more).

    Example:

    >>> with keras_lottery.data_parallel():
    ...     model = keras_lottery.models.lenet_300_100()
    ...     model.compile("sgd", "sparse_categorical_crossentropy", ["accuracy"])
    ...     result = keras_lottery.TicketSearch(model, x, y, batch_size=64).run()
    """
    backend = keras.backend.backend()
    if backend == "jax":
        with keras.distribution.DataParallel(devices=devices).scope():
            yield
    elif backend == "tensorflow":
        import tensorflow as tf

        with tf.distribute.MirroredStrategy(devices).scope():
            yield
    else:
        raise ValueError(
            f"Expected the JAX or TensorFlow backend for data-parallel training: Keras "
            f"has no multi-device trainer for {backend}. Received backend={backend!r}; "
            "set KERAS_BACKEND=jax (or tensorflow), or run one search per device "
            "(`keras-lottery run --seeds`, one process per seed)."
        )


def lay_out_like(mask, weight) -> None:
    """Gives `mask` the sharding of `weight` under a `keras.distribution` (JAX).

    A `ModelParallel` layout map matches variable paths in full, so a map
    written for `.../kernel` would leave `.../kernel_mask` replicated and every
    `weight * mask` would gather the sharded weight. A JAX variable shards
    every value assigned to it by its layout, so the mask takes the weight's
    layout and is assigned its value again. Other backends keep no layout.
    """
    layout = _keras.variable_layout(weight)
    if keras.backend.backend() != "jax" or layout is None:
        return
    if _keras.variable_layout(mask) is layout:
        return
    _keras.set_variable_layout(mask, layout)
    if _keras.has_value(mask):  # Else laid out when initialized.
        mask.assign(keras.ops.ones(mask.shape, mask.dtype))
