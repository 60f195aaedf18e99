"""The private parts of Keras that keras-lottery relies on, each in one place.

Keras 3 has no public API for these; each function says why it is needed and
which Keras releases it was tried on (3.11 to 3.15), so that a Keras release
that changes one breaks this module, named, rather than many others.
"""

import contextlib

import keras


def sublayers(layer, include_self=False) -> list:
    """Every layer inside `layer` at any depth, parents before their children.

    Public `Model.layers` lists only a model's own layers, and a layer has no
    public list of the layers it holds; `_flatten_layers` is how Keras itself
    walks them (3.11-3.15).
    """
    return list(layer._flatten_layers(include_self=include_self, recursive=True))


def children(layer) -> list:
    """The layers `layer` holds directly (see `sublayers`)."""
    return list(layer._flatten_layers(include_self=False, recursive=False))


def own_variables(layer) -> list:
    """The variables `layer` tracks itself, not those of the layers inside it.

    `layer.weights` includes the sublayers'; the layer's own lists are the
    private `_trainable_variables` and `_non_trainable_variables`, what
    `Layer.save_own_variables` saves (3.11-3.15).
    """
    return list(layer._trainable_variables) + list(layer._non_trainable_variables)


@contextlib.contextmanager
def unlocked(layer):
    """Lets a built layer track new variables (its masks) inside the block.

    Keras locks a layer's state once it is built; its own `quantize` and
    `_untrack_variable` unlock `_tracker` the same way to change the
    variables of a built layer (3.11-3.15).
    """
    tracker = layer._tracker
    locked = tracker.locked
    tracker.unlock()
    try:
        yield
    finally:
        if locked:
            tracker.lock()


def untrack(layer, variable) -> None:
    """Makes `layer` forget `variable` (a mask removed by `strip`).

    `del layer.<attribute>` untracks too, but runs a full garbage collection
    for each variable; `_untrack_variable` is what it calls (3.11-3.15), and
    also drops the variable from a torch layer's parameters.
    """
    layer._untrack_variable(variable)


def has_default_build(cls) -> bool:
    """Whether layer class `cls` keeps Keras' default `Layer.build`.

    Keras treats such a layer as one without weights of its own to build:
    its own are built at construction, and another is built by tracing its
    first call. It tells the default `build` by the `_is_default` mark on
    the function (3.11-3.15), and so does this: `cls.build is
    keras.layers.Layer.build` would miss a default `build` wrapped with
    `functools.wraps`, which keeps the mark.
    """
    return bool(getattr(getattr(cls, "build", None), "_is_default", False))


def stored_as(attribute) -> tuple:
    """The instance attributes under which a Keras layer may keep the variable
    it shows as `attribute`: that name, or `_<name>` where a property
    computes the public one (`Dense.kernel` reads `_kernel`, for LoRA and
    quantization). Private names (3.11-3.15); a masked read must find the
    variable itself, not what the property returns.
    """
    return attribute, f"_{attribute}"


def attention_projections(layer) -> dict:
    """`{"query": "_query_dense", ...}`: the attributes of an attention layer
    (`MultiHeadAttention`, `GroupQueryAttention`, subclasses) that hold its
    projections, `EinsumDense` layers whose kernels hold the heads; with
    "gate" where the layer made one (`use_gate=True`, Keras 3.15).

    `MultiHeadAttention` has public properties for four of them
    (`query_dense`, ...), `GroupQueryAttention` none, and neither one for
    the gate: the private attributes serve both classes alike (3.11-3.15).
    """
    names = ("query", "key", "value", "output") + (
        ("gate",) if getattr(layer, "_gate_dense", None) is not None else ())
    return {name: f"_{name}_dense" for name in names}


def variable_layout(variable):
    """The layout by which a JAX `variable` shards every value assigned to
    it, None if it has none (other backends keep none).

    Keras sets it from the active `keras.distribution` when the variable is
    made and keeps it in `_layout` (3.11-3.15); there is no public way to
    read it or to set it once the variable exists.
    """
    return getattr(variable, "_layout", None)


def set_variable_layout(variable, layout) -> None:
    """Makes `variable` shard each value assigned to it from now on by
    `layout`, one that `variable_layout` returned."""
    variable._layout = layout


def has_value(variable) -> bool:
    """Whether `variable` holds a value yet: a variable made in a stateless
    scope (a traced build) has none until Keras initializes it.

    `variable.value` is public, but reads as the initializer's output while
    there is none; `_value` is None then (3.11-3.15).
    """
    return getattr(variable, "_value", None) is not None


def excludes_from_weight_decay(optimizer) -> bool:
    """Whether `optimizer.exclude_from_weight_decay(...)` was called on it.

    Keras keeps the exclusions on the optimizer object only: they are not in
    `get_config()`, so an optimizer rebuilt from its configuration would decay
    what the original does not, and no public getter says so (3.11-3.15).
    """
    return bool(getattr(optimizer, "_exclude_from_weight_decay", None)
                or getattr(optimizer, "_exclude_from_weight_decay_pattern", None))


def functional_class():
    """Keras' `Functional`, the class of `keras.Model(inputs, outputs)`.

    Not exported (3.11-3.15); needed to tell a graph model whose config
    lists its layers from a subclass with a config of its own.
    """
    from keras.src.models.functional import Functional

    return Functional


def graph_nodes(function) -> list:
    """The nodes of a `keras.Function` (or Functional model), inputs first.

    Keras has no public graph walk; `_nodes_by_depth` is what `Functional`
    itself runs (3.11-3.15). Each node has `operation`, `input_tensors`,
    `output_tensors` and `arguments`.
    """
    by_depth = function._nodes_by_depth
    return [node for depth in sorted(by_depth, reverse=True) for node in by_depth[depth]]


def made_by(tensor):
    """`(operation, node)`: the call that made the symbolic `tensor` (of a
    layer, an op such as `keras.ops.add`, or an `Input`'s layer) and its node,
    whose `input_tensors` lead on up the graph; None for a tensor no call made.

    Keras has no public walk from a tensor to the operation that made it;
    its own `Functional` follows `_keras_history` (operation, node index,
    tensor index) into the operation's `_inbound_nodes` (3.11-3.15).
    """
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return None
    operation = history.operation
    return operation, operation._inbound_nodes[history.node_index]


@contextlib.contextmanager
def traces_forgotten(model):
    """Within the block, `inner_function` may trace `model`'s layers; after it,
    their lists of calls are as before.

    A symbolic call adds a node to each layer it calls (`_inbound_nodes`,
    `_outbound_nodes`, 3.11-3.15): kept, they would pile up at every trace
    and make `layer.output` of an inner layer ambiguous.
    """
    layers = sublayers(model, include_self=True)
    lengths = [(len(layer._inbound_nodes), len(layer._outbound_nodes)) for layer in layers]
    try:
        yield
    finally:
        for layer, (inbound, outbound) in zip(layers, lengths):
            del layer._inbound_nodes[inbound:]
            del layer._outbound_nodes[outbound:]


def inner_function(layer, node):
    """A `keras.Function` of what `layer` computes at `node` (one of its calls
    in a functional graph), its own layers and ops as nodes: `layer.call`
    traced again on fresh inputs of the same shapes. None if it cannot be.
    Trace within `traces_forgotten`.

    For a composite layer (a KerasHub `TransformerEncoder`), whose sublayers
    the model's graph does not show. `node.arguments` holds the call's
    arguments (3.11-3.15).
    """
    arguments = node.arguments
    fresh = {}

    def renew(value):
        if isinstance(value, keras.KerasTensor):
            if id(value) not in fresh:
                # Unknown sizes made known (one example of length two): a call
                # that builds a causal mask from the length needs a number.
                shape = tuple((1 if axis == 0 else 2) if size is None else size
                              for axis, size in enumerate(value.shape))
                fresh[id(value)] = keras.Input(batch_shape=shape, dtype=value.dtype)
            return fresh[id(value)]
        return value

    try:
        args = keras.tree.map_structure(renew, list(arguments.args))
        kwargs = keras.tree.map_structure(renew, dict(arguments.kwargs))
        outputs = layer.call(*args, **kwargs)
        return keras.Function(list(fresh.values()), outputs)
    except Exception:  # noqa: BLE001 - a layer that cannot be traced keeps its units.
        return None
