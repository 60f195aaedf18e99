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

Keras has no public graph walk; `_nodes_by_depth` and `_keras_history` are
what its own `Functional` uses.
"""

import dataclasses
import math

import keras

from keras_lottery.layers import MaskedLayer
from keras_lottery.layers.attention import MaskedMultiHeadAttention
from keras_lottery.layers.masked_layer import stored_variable
from keras_lottery.masks import prunable_variables

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


# Activations that act on each value alone (softmax and the like couple a
# layer's channels through their sum: a removed unit would still count).
_ELEMENTWISE = frozenset((
    "linear", "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "swish",
    "hard_silu", "hard_swish", "mish", "sigmoid", "hard_sigmoid", "tanh", "hard_tanh",
    "softplus", "softsign", "exponential", "log_sigmoid", "squareplus", "sparse_plus",
    "tanh_shrink", "soft_shrink", "hard_shrink", "threshold",
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
    channels, coupled as above, and every masked MultiHeadAttention's heads.

    A subclassed model has no graph to walk: only its attention heads are found.
    """
    variables = prunable_variables(model)
    path_of = {(id(entry.layer), id(entry.weight)): path for path, entry in variables.items()}
    groups = [_heads(layer, path_of) for layer in _unique(e.layer for e in variables.values())
              if isinstance(layer, MaskedMultiHeadAttention)]
    graph = _Graph.of(model)
    if graph is None:
        return groups
    done = set()
    for layer in graph.layers():
        if _producer_kind(layer) and id(layer) not in done:
            group = graph.coupled(layer, path_of)
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
    if isinstance(layer, keras.src.layers.convolutional.base_conv.BaseConv) and not isinstance(
            layer, (keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)):
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


def _kernel_path(layer, path_of, owner=None):
    """The path of the kernel of `owner` (default `layer`), masked by `layer`."""
    return path_of[(id(layer), id(stored_variable(owner or layer, "kernel")))]


def _heads(layer, path_of):
    """An attention layer's heads: query/key/value kernels `(dim, heads, size)`
    hold them on axis 1, the output kernel `(heads, size, dim)` reads them on axis 0."""
    def path(name):
        return _kernel_path(layer, path_of, getattr(layer, f"_{name}_dense"))

    projections = ("query", "key", "value") + (("gate",) if hasattr(layer, "_gate_dense") else ())
    return UnitGroup(
        name=layer.name, kind="heads", units=layer.num_heads,
        producers=[Slice(path(name), 1) for name in projections],
        consumers=[Slice(path("output"), 0)], layers=[layer],
        readers=[(layer, Slice(path("output"), 0))])


class _Graph:
    """A functional model's graph: who makes each tensor and who reads it."""

    def __init__(self, model, nodes):
        self.model = model
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
    def of(cls, model):
        functional = getattr(model, "_functional", None) if isinstance(
            model, keras.Sequential) else model
        if not isinstance(functional, keras.Function):
            return None
        nodes = [node for depth in sorted(functional._nodes_by_depth, reverse=True)
                 for node in functional._nodes_by_depth[depth]]
        graph = cls(functional, nodes)
        return graph

    def layers(self):
        return _unique(node.operation for node in self.nodes)

    def calls(self, layer):
        return [node for node in self.nodes if node.operation is layer]

    def coupled(self, start, path_of) -> UnitGroup:
        """The group of `start`'s output channels, found by a walk both ways."""
        kind = _producer_kind(start)
        units = start.units if kind == "neurons" else start.filters
        group = UnitGroup(name=start.name, kind=kind, units=units, producers=[], consumers=[])
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
                block("it is a model output")
            # Who made it.
            maker = self.maker.get(id(tensor))
            operation = None if maker is None else maker.operation
            if operation is None or isinstance(operation, keras.layers.InputLayer):
                block("it is a model input")
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
        elif type(operation).__name__ in ("Add", "Average", "Subtract", "Maximum", "Minimum"):
            for other in list(node.input_tensors) + list(node.output_tensors):
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
