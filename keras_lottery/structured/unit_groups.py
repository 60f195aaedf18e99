"""Which units (neurons, filters, attention heads) a model can lose whole, and
where each unit sits in every weight that must lose it with it.

A unit of a Dense or Conv layer is one output channel. Removing it exactly
means more than zeroing its own kernel slice: the unit still emits a trained
constant (its bias, a BatchNormalization's beta), so every layer that reads
the channel must lose its input slice too. Channels are *coupled* through
layers that act on each channel alone (activations, dropout, pooling,
BatchNormalization, `Flatten` into a Dense layer) and through additions,
whose operands must lose the same channels (a residual group). This module
walks a functional model's graph to find each coupled group: its
`producers` (kernels whose output axis holds the units), its `consumers`
(kernels whose input axis reads them) and the per-channel layers between,
or why the group cannot lose units (`blocked`). An attention layer's heads
are a group of their own, inside the layer.

Inside a composite layer (a KerasHub `TransformerEncoder`), whose sublayers
the model's graph does not show, the walk runs on the layer's own call,
traced again (`_keras.inner_function`): its feed-forward units are
coupled there, and stop at its inputs and outputs. Heads are found in every
`MultiHeadAttention`, subclasses included (KerasHub's cached attention).
"""

import dataclasses
import math

import keras

from keras_lottery import _keras
from keras_lottery.layers import MaskedLayer
from keras_lottery.layers.masked_layer import stored_variable
from keras_lottery.masking.masks import layer_labels, prunable_variables

# Layers that act on each channel of the last axis alone (their output's
# channel j depends on their input's channel j only).
_CHANNELWISE = tuple(getattr(keras.layers, name) for name in (
    "Activation", "ReLU", "LeakyReLU", "ELU", "Dropout", "SpatialDropout1D",
    "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout", "GaussianNoise", "AlphaDropout",
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
    "AveragePooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
    "GlobalAveragePooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D",
    "UpSampling1D", "UpSampling2D", "UpSampling3D", "Identity", "BatchNormalization",
) if hasattr(keras.layers, name))

# The convolutions whose units are filters (their Keras base class is not
# exported: the public classes say the same).
FILTER_CONVOLUTIONS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)

# Operations (`keras.ops` on symbolic tensors) that act on each value alone.
_ELEMENTWISE_OPS = frozenset((
    "Relu", "Relu6", "LeakyRelu", "Elu", "Selu", "Celu", "Gelu", "Silu", "Swish", "HardSilu",
    "Mish", "Sigmoid", "HardSigmoid", "Tanh", "Softplus", "Softsign", "Exp", "Log", "Sqrt",
    "Square", "Abs", "Negative", "Cast", "Erf",
))
# Operations on two operands of the same channels (a gated feed-forward's product).
_COUPLING_OPS = frozenset(("Add", "Average", "Subtract", "Maximum", "Minimum", "Multiply"))


# Activations that act on each value alone (softmax and the like couple a
# layer's channels through their sum: a removed unit would still count).
_ELEMENTWISE = frozenset((
    "linear", "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "swish",
    "hard_silu", "hard_swish", "mish", "sigmoid", "hard_sigmoid", "tanh", "hard_tanh",
    "softplus", "softsign", "exponential", "log_sigmoid", "squareplus", "sparse_plus",
    "tanh_shrink", "soft_shrink", "hard_shrink", "threshold",
    "gelu_approximate",  # KerasHub's name for Keras' gelu(approximate=True).
))


def _mixing_activation(layer):
    """The name of `layer`'s activation if it couples channels (softmax...), else None."""
    activation = getattr(layer, "activation", None)
    if activation is None:
        return None
    name = getattr(activation, "__name__", type(activation).__name__)
    return None if name in _ELEMENTWISE else name


@dataclasses.dataclass(frozen=True)
class Slice:
    """Where a group's units sit in one weight: along `axis`, unit `j` at the
    entries `j, j + units, j + 2 * units, ...` (more than one after a
    `Flatten`, which puts channels fastest)."""

    path: str  # The variable's path.
    axis: int


@dataclasses.dataclass
class UnitGroup:
    """Units that are kept or removed together, across the layers that share them."""

    name: str  # The first producer layer's name.
    kind: str  # "neurons", "filters" or "heads".
    units: int
    producers: list  # [Slice]: kernels whose output axis holds the units (pruned as the unit).
    consumers: list  # [Slice]: masked kernels whose input axis reads them.
    layers: list = dataclasses.field(default_factory=list)  # The producer layers.
    per_channel: list = dataclasses.field(default_factory=list)  # BatchNormalization between.
    readers: list = dataclasses.field(default_factory=list)  # (layer, Slice) consumers' layers.
    blocked: str | None = None  # Why its units cannot be removed, if they cannot.


def unit_groups(model) -> list[UnitGroup]:
    """The unit groups of `model`: every masked Dense and Conv layer's output
    channels, coupled as above (inside composite layers too), and the heads
    of every masked `MultiHeadAttention`.

    A subclassed model has no graph to walk: only its attention heads are found.
    """
    variables = prunable_variables(model)
    path_of = {id(entry.weight): path for path, entry in variables.items()}
    labels = layer_labels(model)
    groups = [_heads(layer, path_of, labels)
              for layer in _keras.sublayers(model, include_self=True)
              if _has_masked_heads(layer, path_of)]
    graph = _Graph.of(model)
    if graph is None:
        return groups
    with _keras.traces_forgotten(model):
        # The model's graph, its nested models' (a KerasHub task's backbone),
        # and the calls of the composite layers in them.
        graphs, stack = [], [graph]
        while stack:
            walked = stack.pop(0)
            graphs.append(walked)
            for node in walked.nodes:
                inner = (_Graph.of(node.operation, "the nested model")
                         if isinstance(node.operation, keras.Model)
                         else _Graph.inside(node.operation, node))
                if inner is not None and all(inner.model is not g.model for g in graphs + stack):
                    stack.append(inner)
        done = set()
        for walked in graphs:
            for layer in walked.layers():
                if _producer_kind(layer) and id(layer) not in done:
                    group = walked.coupled(layer, path_of, labels)
                    done.update(id(producer) for producer in group.layers)
                    groups.append(group)
    return groups


def _unique(items):
    seen, found = set(), []
    for item in items:
        if id(item) not in seen:
            seen.add(id(item))
            found.append(item)
    return found


def _producer_kind(layer):
    """"neurons" for a masked Dense-like layer, "filters" for a masked conv, else None."""
    if not isinstance(layer, MaskedLayer):
        return None
    if isinstance(layer, keras.layers.Dense):
        return "neurons"
    if isinstance(layer, FILTER_CONVOLUTIONS):
        return "filters"
    return None


def _why_not_channels_last(layer, reads_only=False):
    """Why `layer` cannot keep the group's channels apart, or None. A layer
    that only reads them (`reads_only`) is free to mix its own outputs."""
    if not reads_only and _mixing_activation(layer):
        return f"{layer.name!r} applies {_mixing_activation(layer)}, which mixes channels"
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        return f"{layer.name!r} is channels_first"
    if getattr(layer, "groups", 1) != 1:
        return f"{layer.name!r} is a grouped convolution"
    return None


def _kernel_path(layer, path_of):
    """The path of `layer`'s masked kernel."""
    return path_of[id(stored_variable(layer, "kernel"))]


def _projection(layer, name):
    """The `EinsumDense` of an attention layer's projection `name` ("query", ...)."""
    return getattr(layer, _keras.attention_projections(layer)[name])


def _has_masked_heads(layer, path_of):
    """A `MultiHeadAttention` (a subclass too) whose four projections are masked."""
    if not isinstance(layer, keras.layers.MultiHeadAttention) or not layer.built:
        return False
    try:
        return all(_kernel_path(_projection(layer, name), path_of)
                   for name in ("query", "key", "value", "output"))
    except (AttributeError, KeyError):
        return False


def _heads(layer, path_of, labels):
    """An attention layer's heads: query/key/value kernels `(dim, heads, size)`
    hold them on axis 1, the output kernel `(heads, size, dim)` reads them on axis 0."""
    def path(name):
        return _kernel_path(_projection(layer, name), path_of)

    projections = [name for name in _keras.attention_projections(layer) if name != "output"]
    return UnitGroup(
        name=labels[id(layer)], kind="heads", units=layer.num_heads,
        producers=[Slice(path(name), 1) for name in projections],
        consumers=[Slice(path("output"), 0)], layers=[layer],
        readers=[(layer, Slice(path("output"), 0))])


class _Graph:
    """A functional model's graph: who makes each tensor and who reads it."""

    def __init__(self, model, nodes, within=None):
        self.model = model
        # What its inputs and outputs are, for a graph inside the model's.
        self.within = within
        self.maker = {}  # id(tensor) -> node
        self.readers = {}  # id(tensor) -> [node]
        self.tensors = {}
        for node in nodes:
            for tensor in node.output_tensors:
                self.maker[id(tensor)] = node
                self.tensors[id(tensor)] = tensor
            for tensor in node.input_tensors:
                self.readers.setdefault(id(tensor), []).append(node)
                self.tensors[id(tensor)] = tensor
        self.outputs = {id(t) for t in keras.tree.flatten(model.outputs)}
        self.nodes = nodes

    @classmethod
    def of(cls, model, within=None):
        if isinstance(model, keras.Sequential):
            try:
                # The same nodes as the Sequential's own graph: a Function
                # only walks the calls that made its outputs, adding none.
                function = keras.Function(model.inputs, model.outputs)
            except (AttributeError, ValueError):
                return None  # Not built on an input: no graph.
        elif isinstance(model, keras.Function):
            function = model
        else:
            return None
        return cls(model, _keras.graph_nodes(function),
                   within=None if within is None else f"{within} {model.name!r}")

    @classmethod
    def inside(cls, layer, node):
        """The graph of a composite layer's call at `node`: a layer that is
        neither masked nor a model, holding masked layers."""
        if isinstance(layer, (MaskedLayer, keras.Model)) or not isinstance(
                layer, keras.layers.Layer) or not any(
                isinstance(inner, MaskedLayer) for inner in _keras.sublayers(layer)):
            return None
        function = _keras.inner_function(layer, node)
        return None if function is None else cls(function, _keras.graph_nodes(function),
                                                 within=f"the layer {layer.name!r}")

    def layers(self):
        return _unique(node.operation for node in self.nodes)

    def calls(self, layer):
        return [node for node in self.nodes if node.operation is layer]

    def coupled(self, start, path_of, labels) -> UnitGroup:
        """The group of `start`'s output channels, found by a walk both ways."""
        kind = _producer_kind(start)
        units = start.units if kind == "neurons" else start.filters
        group = UnitGroup(name=labels[id(start)], kind=kind, units=units, producers=[],
                          consumers=[])
        # (tensor id, repeat): repeat is how many times each channel occurs on
        # the last axis (1, or the spatial size after a Flatten).
        queue, seen = [], set()

        def reach(tensor, repeat=1):
            if (id(tensor), repeat) not in seen:
                seen.add((id(tensor), repeat))
                queue.append((tensor, repeat))

        def block(reason):
            if group.blocked is None:
                group.blocked = reason

        start_calls = self.calls(start)
        if len(start_calls) != 1:
            block(f"{start.name!r} is called {len(start_calls)} times")
        for node in start_calls:
            for tensor in node.output_tensors:
                reach(tensor)
        while queue:
            tensor, repeat = queue.pop(0)
            if tensor.shape[-1] != units * repeat:
                block(f"a tensor of shape {tuple(tensor.shape)} carries its {units} units")
                continue  # Nothing past it has these units where they are expected.
            if id(tensor) in self.outputs:
                block(f"it is an output of {self.within}" if self.within else "it is a model output")
            # Who made it.
            maker = self.maker.get(id(tensor))
            operation = None if maker is None else maker.operation
            if operation is None or isinstance(operation, keras.layers.InputLayer):
                block(f"it is an input of {self.within}" if self.within else "it is a model input")
            elif _producer_kind(operation) and repeat == 1:
                if operation not in group.layers:
                    problem = _why_not_channels_last(operation)
                    if problem:
                        block(problem)
                    if len(self.calls(operation)) != 1:
                        block(f"{operation.name!r} is called more than once")
                    group.layers.append(operation)
                    group.producers.append(Slice(_kernel_path(operation, path_of), -1))
            else:
                self._through(operation, maker, tensor, repeat, reach, block, group, backward=True)
            # Who reads it.
            for node in self.readers.get(id(tensor), []):
                reader = node.operation
                if _producer_kind(reader) and node.input_tensors[0] is tensor:
                    problem = _why_not_channels_last(reader, reads_only=True)
                    if problem:
                        block(problem)
                    if len(self.calls(reader)) != 1:
                        block(f"{reader.name!r} is called more than once")
                    if _producer_kind(reader) == "filters" and repeat != 1:
                        block(f"{reader.name!r} reads them flattened")
                    axis = 0 if _producer_kind(reader) == "neurons" else -2
                    if _producer_kind(reader) == "neurons" and len(reader.kernel.shape) != 2:
                        block(f"{reader.name!r} has a kernel of rank {len(reader.kernel.shape)}")
                    piece = Slice(_kernel_path(reader, path_of), axis)
                    if piece not in group.consumers:
                        group.consumers.append(piece)
                        group.readers.append((reader, piece))
                else:
                    self._through(reader, node, tensor, repeat, reach, block, group,
                                  backward=False)
        if not group.consumers and group.blocked is None:
            block("nothing reads them")
        return group

    def _through(self, operation, node, tensor, repeat, reach, block, group, backward):
        """Couples the tensors on the other side of a layer that keeps channels apart."""
        name = getattr(operation, "name", type(operation).__name__)
        if isinstance(operation, keras.Model) or operation is None:
            block(f"they pass through the nested model {name!r}")
        elif isinstance(operation, _CHANNELWISE):
            problem = _why_not_channels_last(operation)
            if problem:
                block(problem)
            elif isinstance(operation, keras.layers.BatchNormalization) and (
                    repeat != 1 or operation.axis not in (-1, len(tensor.shape) - 1)):
                block(f"{name!r} normalizes another axis than their channels")
            if isinstance(operation, keras.layers.BatchNormalization) and (
                    operation not in group.per_channel):
                group.per_channel.append(operation)
            for other in (node.input_tensors if backward else node.output_tensors):
                reach(other, repeat)
        elif type(operation).__name__ in _COUPLING_OPS:
            for other in list(node.input_tensors) + list(node.output_tensors):
                reach(other, repeat)
        elif type(operation).__name__ in _ELEMENTWISE_OPS:
            for other in (node.input_tensors if backward else node.output_tensors):
                reach(other, repeat)
        elif isinstance(operation, keras.layers.Flatten) and not backward:
            shape = node.input_tensors[0].shape
            if operation.data_format != "channels_last":
                block(f"{name!r} is channels_first")
            elif any(d is None for d in shape[1:-1]):
                block(f"{name!r} flattens an unknown size")
            else:
                spatial = math.prod(shape[1:-1]) * repeat
                for other in node.output_tensors:
                    reach(other, spatial)
        elif isinstance(operation, keras.layers.Flatten):
            source = node.input_tensors[0]
            if any(d is None for d in source.shape[1:-1]):
                block(f"{name!r} flattens an unknown size")
            else:
                reach(source, repeat // max(1, math.prod(source.shape[1:-1])))
        else:
            block(f"{type(operation).__name__} {name!r} mixes them")
