"""The private parts of Keras that `keras_lottery._keras` relies on, one test
each: a Keras release that removes or changes one fails here, naming it and
the release, rather than somewhere deep in masking or shrinking. And no
module but `_keras.py` touches private Keras API, so that a new use cannot
slip in unnoticed."""

import ast
import functools
import inspect
import re
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_lottery
from keras_lottery import _keras
from keras_lottery.layers import MASKED_TWINS, MaskedLayer

PACKAGE = Path(keras_lottery.__file__).parent
KERAS = f"Keras {keras.__version__} ({keras.backend.backend()})"


def relied_on(obj, attribute):
    """`obj.<attribute>`, failing with a message naming it if Keras has none."""
    owner = obj.__name__ if isinstance(obj, type) else type(obj).__name__
    assert hasattr(obj, attribute), (
        f"{KERAS} has no `{owner}.{attribute}`, which keras_lottery/_keras.py relies on: "
        "adapt the function there that uses it.")
    return getattr(obj, attribute)


def check(condition, what):
    assert condition, f"{KERAS}: {what}; keras_lottery/_keras.py relies on it."


class Pair(keras.layers.Layer):
    """A composite layer: two Dense layers the model's graph does not show."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.first = keras.layers.Dense(4, name="first")
        self.second = keras.layers.Dense(3, name="second")

    def build(self, input_shape):
        self.first.build(input_shape)
        self.second.build((*input_shape[:-1], 4))

    def call(self, x, scale=1.0):
        return self.second(self.first(x)) * scale


def functional_model():
    x = keras.Input((5,), name="x")
    hidden = keras.layers.Dense(4, name="dense")(x)
    y = Pair(name="pair")(hidden, scale=2.0)
    return keras.Model(x, y, name="functional")


# -- layers and variables ----------------------------------------------------


def test_flatten_layers_walks_every_layer_parents_first():
    relied_on(keras.layers.Layer, "_flatten_layers")
    lstm = keras.layers.LSTM(2, kernel_initializer="zeros", recurrent_initializer="zeros",
                             name="lstm")
    model = keras.Sequential([keras.Input((3, 4)), lstm, Pair(name="pair")])
    pair = model.get_layer("pair")
    found = _keras.sublayers(model, include_self=True)
    check(found[0] is model, "`_flatten_layers(include_self=True)` lists the layer first")
    for layer in (lstm, lstm.cell, pair, pair.first, pair.second):
        check(any(layer is f for f in found),
              f"`_flatten_layers(recursive=True)` reaches {layer.name!r} inside the model")
    index = {id(layer): i for i, layer in enumerate(found)}
    check(index[id(lstm)] < index[id(lstm.cell)] and index[id(pair)] < index[id(pair.first)],
          "`_flatten_layers` lists a layer before the layers inside it")
    check(not any(f is model for f in _keras.sublayers(model)),
          "`_flatten_layers(include_self=False)` leaves the layer out")
    check([layer.name for layer in _keras.children(pair)] == ["first", "second"],
          "`_flatten_layers(recursive=False)` lists a layer's direct sublayers in order")
    check(_keras.children(lstm) == [lstm.cell], "an LSTM holds its cell as a sublayer")


def test_own_variables_are_the_layers_own_lists():
    norm = keras.layers.BatchNormalization()
    norm.build((2, 3))
    relied_on(norm, "_trainable_variables")
    relied_on(norm, "_non_trainable_variables")
    own = {id(v) for v in _keras.own_variables(norm)}
    check(own == {id(v) for v in norm.weights},
          "`_trainable_variables` + `_non_trainable_variables` hold a layer's own variables")
    lstm = keras.layers.LSTM(2, kernel_initializer="zeros", recurrent_initializer="zeros")
    lstm.build((1, 3, 4))
    check(lstm.weights and not _keras.own_variables(lstm),
          "a layer's own variable lists leave out those of the layers inside it (an LSTM's cell)")


def test_tracker_unlocks_a_built_layer():
    dense = keras.layers.Dense(2)
    dense.build((1, 3))
    tracker = relied_on(dense, "_tracker")
    for name in ("locked", "lock", "unlock"):
        relied_on(tracker, name)
    check(tracker.locked, "`_tracker.locked` is True once a layer is built")
    with _keras.unlocked(dense):
        extra = dense.add_weight(shape=(3, 2), initializer="ones", trainable=False, name="extra")
    check(tracker.locked, "`_tracker.lock()` locks the layer again")
    check(any(v is extra for v in dense.weights),
          "a variable added while `_tracker` is unlocked is tracked by the layer")


def test_untrack_variable_forgets_a_variable():
    dense = keras.layers.Dense(2)
    dense.build((1, 3))
    relied_on(dense, "_untrack_variable")
    with _keras.unlocked(dense):
        extra = dense.add_weight(shape=(3, 2), initializer="ones", trainable=False, name="extra")
        _keras.untrack(dense, extra)
    check(not any(v is extra for v in dense.weights),
          "`_untrack_variable` removes the variable from the layer's weights")
    check(len(dense.weights) == 2, "`_untrack_variable` leaves the other variables tracked")


def test_default_build_is_marked():
    check(getattr(keras.layers.Layer.build, "_is_default", False),
          "`Layer.build` carries the `_is_default` mark")

    class Without(keras.layers.Layer):
        def call(self, x):
            return x

    class With(keras.layers.Layer):
        def build(self, input_shape):
            pass

        def call(self, x):
            return x

    @functools.wraps(keras.layers.Layer.build)
    def wrapped_build(self, input_shape):
        keras.layers.Layer.build(self, input_shape)

    class Wrapped(Without):
        build = wrapped_build

    check(_keras.has_default_build(Without) and _keras.has_default_build(Wrapped)
          and not _keras.has_default_build(With),
          "`build._is_default` tells a layer class without its own `build`, wrapped or not")
    # Keras' own layers without a `build` are built at construction, the layers
    # it tells by the mark.
    check(_keras.has_default_build(keras.layers.Activation)
          and keras.layers.Activation("relu").built
          and not _keras.has_default_build(keras.layers.Dense),
          "a Keras layer without its own `build` is marked built at construction")


def test_stored_as_finds_each_masked_weight():
    # One built layer of each class keras-lottery has a twin for: `(arguments,
    # input shape)`, the attention layers `(arguments, query shape)`. Zeros
    # initialize at once where JAX would compile each random initializer.
    L = keras.layers
    zeros = {"kernel_initializer": "zeros"}
    cell = {**zeros, "recurrent_initializer": "zeros"}
    recipes = {
        L.Conv1D: ((2, 3), zeros, (1, 8, 2)),
        L.Conv1DTranspose: ((2, 3), zeros, (1, 8, 2)),
        L.Conv2D: ((2, 3), zeros, (1, 8, 8, 2)),
        L.Conv2DTranspose: ((2, 3), zeros, (1, 8, 8, 2)),
        L.Conv3D: ((2, 3), zeros, (1, 4, 4, 4, 2)),
        L.Conv3DTranspose: ((2, 3), zeros, (1, 4, 4, 4, 2)),
        L.DepthwiseConv1D: ((3,), {"depthwise_initializer": "zeros"}, (1, 8, 2)),
        L.DepthwiseConv2D: ((3,), {"depthwise_initializer": "zeros"}, (1, 8, 8, 2)),
        L.SeparableConv1D: ((2, 3), {"depthwise_initializer": "zeros",
                                     "pointwise_initializer": "zeros"}, (1, 8, 2)),
        L.SeparableConv2D: ((2, 3), {"depthwise_initializer": "zeros",
                                     "pointwise_initializer": "zeros"}, (1, 8, 8, 2)),
        L.ConvLSTM1D: ((2, 3), cell, (1, 2, 8, 2)),
        L.ConvLSTM2D: ((2, 3), cell, (1, 2, 8, 8, 2)),
        L.ConvLSTM3D: ((2, 3), cell, (1, 2, 4, 4, 4, 2)),
        L.Dense: ((2,), zeros, (1, 3)),
        L.EinsumDense: (("ab,bc->ac", 2), zeros, (1, 3)),
        L.Embedding: ((5, 2), {"embeddings_initializer": "zeros"}, (1, 3)),
        L.GRU: ((2,), cell, (1, 3, 4)),
        L.GRUCell: ((2,), cell, (1, 4)),
        L.LSTM: ((2,), cell, (1, 3, 4)),
        L.LSTMCell: ((2,), cell, (1, 4)),
        L.SimpleRNN: ((2,), cell, (1, 3, 4)),
        L.SimpleRNNCell: ((2,), cell, (1, 4)),
        L.MultiHeadAttention: ((2, 2), zeros, (1, 3, 4)),
        L.GroupQueryAttention: ((2, 2, 1), zeros, (1, 3, 4)),
    }
    assert set(recipes) == set(MASKED_TWINS), "Expected a recipe here for each class in MASKED_TWINS."
    for keras_class, twin in MASKED_TWINS.items():
        arguments, keywords, shape = recipes[keras_class]
        layer = keras_class(*arguments, **keywords)
        if isinstance(layer, (L.MultiHeadAttention, L.GroupQueryAttention)):
            layer.build(shape, shape)
        else:
            layer.build(shape)
        paths = (twin.prunable_weight_paths(layer)
                 if twin.prunable_weight_paths is not MaskedLayer.prunable_weight_paths
                 else twin.prunable_weights)
        for path in paths:
            owner, attribute = MaskedLayer._owner_of(layer, path)
            held = [owner.__dict__[key] for key in _keras.stored_as(attribute)
                    if key in owner.__dict__]
            check(len(held) == 1 and isinstance(held[0], keras.Variable),
                  f"{keras_class.__name__} keeps the variable of `{path}` under one of "
                  f"{_keras.stored_as(attribute)}")
            check(getattr(owner, attribute) is held[0],
                  f"{keras_class.__name__}.{attribute} returns the variable it keeps")


def test_attention_projections_are_its_einsum_dense_layers():
    zeros = {"kernel_initializer": "zeros"}
    layers = [keras.layers.MultiHeadAttention(2, 2, **zeros),
              keras.layers.GroupQueryAttention(2, 2, 1, **zeros)]
    if "use_gate" in inspect.signature(keras.layers.MultiHeadAttention).parameters:
        layers.append(keras.layers.MultiHeadAttention(2, 2, use_gate=True, **zeros))
    for layer in layers:
        layer.build((1, 3, 4), (1, 3, 4))
        found = _keras.attention_projections(layer)
        expected = ["query", "key", "value", "output"] + (
            ["gate"] if getattr(layer, "use_gate", getattr(layer, "_use_gate", False)) else [])
        check(list(found) == expected, f"{type(layer).__name__} has projections {expected}")
        for name, attribute in found.items():
            projection = relied_on(layer, attribute)
            check(isinstance(projection, keras.layers.EinsumDense)
                  and isinstance(projection.kernel, keras.Variable),
                  f"`{type(layer).__name__}.{attribute}` is the {name} projection's EinsumDense")
    mha = layers[0]
    for name in ("query", "key", "value", "output"):
        check(getattr(mha, f"{name}_dense") is getattr(mha, f"_{name}_dense"),
              f"MultiHeadAttention's public `{name}_dense` is its `_{name}_dense`")


def test_variable_layout_and_value():
    variable = keras.Variable(np.ones((4, 2), "float32"))
    relied_on(variable, "_value")
    check(_keras.has_value(variable), "a variable made outside a stateless scope holds `_value`")
    with keras.StatelessScope():
        deferred = keras.Variable(keras.initializers.Ones(), shape=(4, 2))
        check(not _keras.has_value(deferred),
              "a variable made in a stateless scope has `_value` None until initialized")
    check(_keras.has_value(deferred), "a deferred variable holds `_value` once initialized")
    if keras.backend.backend() != "jax":
        check(_keras.variable_layout(variable) is None, "only JAX variables keep a layout")
        return
    relied_on(variable, "_layout")
    distribution = keras.distribution.DataParallel()
    with distribution.scope():
        sharded = keras.Variable(np.ones((4, 2), "float32"))
    layout = _keras.variable_layout(sharded)
    check(layout is not None, "a JAX variable made under a distribution keeps its `_layout`")
    check(_keras.variable_layout(variable) is None,
          "a JAX variable made without a distribution has no `_layout`")
    _keras.set_variable_layout(variable, layout)
    check(_keras.variable_layout(variable) is layout, "`_layout` can be set on a JAX variable")
    variable.assign(np.zeros((4, 2), "float32"))
    check(variable.value.sharding == sharded.value.sharding,
          "a JAX variable shards each value assigned to it by its `_layout`")


# -- the graph -----------------------------------------------------------------


def test_weight_decay_exclusions_are_seen_and_not_in_the_config():
    plain = keras.optimizers.AdamW(0.01)
    assert not _keras.excludes_from_weight_decay(plain)
    for exclusion in (dict(var_names=["bias"]), dict(var_list=[keras.Variable(1.0)])):
        optimizer = keras.optimizers.AdamW(0.01)
        optimizer.exclude_from_weight_decay(**exclusion)
        assert _keras.excludes_from_weight_decay(optimizer)
        # Why it matters: an optimizer rebuilt from its configuration has none.
        rebuilt = keras.optimizers.AdamW.from_config(optimizer.get_config())
        assert not _keras.excludes_from_weight_decay(rebuilt)


def test_functional_class_is_keras_models_graph_class():
    functional = _keras.functional_class()
    model = functional_model()
    check(type(model) is functional,
          "`keras.Model(inputs, outputs)` is `keras.src.models.functional.Functional`")
    check(isinstance(model, keras.Function), "Functional extends `keras.Function`")
    check(not isinstance(keras.Sequential([keras.layers.Dense(2)]), functional),
          "a Sequential is not a Functional")


def test_nodes_by_depth_orders_a_graphs_nodes():
    model = functional_model()
    relied_on(model, "_nodes_by_depth")
    nodes = _keras.graph_nodes(model)
    for node in nodes:
        for attribute in ("operation", "input_tensors", "output_tensors", "arguments"):
            relied_on(node, attribute)
    names = [node.operation.name for node in nodes]
    check(names == ["x", "dense", "pair"],
          f"`_nodes_by_depth` gives the nodes inputs first (got {names})")
    dense, pair = nodes[1], nodes[2]
    check(pair.input_tensors[0] is dense.output_tensors[0],
          "a node's `input_tensors` are the `output_tensors` of the node that made them")
    function = keras.Function(model.inputs, model.outputs)
    check([node.operation.name for node in _keras.graph_nodes(function)] == names,
          "a `keras.Function` of a model's inputs and outputs has the model's nodes")


def test_keras_history_leads_to_the_node_that_made_a_tensor():
    model = functional_model()
    output = model.outputs[0]
    history = relied_on(output, "_keras_history")
    relied_on(history, "operation")
    relied_on(history, "node_index")
    relied_on(history.operation, "_inbound_nodes")
    operation, node = _keras.made_by(output)
    check(operation is model.get_layer("pair"), "`_keras_history.operation` made the tensor")
    check(any(t is output for t in node.output_tensors),
          "`_inbound_nodes[_keras_history.node_index]` is the node that made the tensor")
    operation, node = _keras.made_by(model.inputs[0])
    check(isinstance(operation, keras.layers.InputLayer) and not node.input_tensors,
          "an `Input` is made by its InputLayer, from nothing")
    check(_keras.made_by(np.ones(2)) is None, "only symbolic tensors have a `_keras_history`")


def test_traces_forgotten_restores_the_layers_calls():
    model = functional_model()
    dense = model.get_layer("dense")
    inbound = relied_on(dense, "_inbound_nodes")
    outbound = relied_on(dense, "_outbound_nodes")
    check(isinstance(inbound, list) and isinstance(outbound, list),
          "`_inbound_nodes` and `_outbound_nodes` are lists")
    before = (list(inbound), list(outbound))
    with _keras.traces_forgotten(model):
        model.get_layer("pair")(dense(keras.Input((5,))))
        check(len(dense._inbound_nodes) == len(before[0]) + 1
              and len(dense._outbound_nodes) == len(before[1]) + 1,
              "a symbolic call adds a node to `_inbound_nodes` and to `_outbound_nodes`")
    check((dense._inbound_nodes, dense._outbound_nodes) == before,
          "`_inbound_nodes` and `_outbound_nodes` can be cut back to what they were")


def test_node_arguments_retrace_a_composite_layer():
    model = functional_model()
    pair = model.get_layer("pair")
    _, node = _keras.made_by(model.outputs[0])
    arguments = relied_on(node, "arguments")
    relied_on(arguments, "args")
    relied_on(arguments, "kwargs")
    check(arguments.kwargs.get("scale") == 2.0, "`node.arguments.kwargs` holds the call's keywords")
    with _keras.traces_forgotten(model):
        function = _keras.inner_function(pair, node)
        check(isinstance(function, keras.Function), "`layer.call` retraces on fresh inputs")
        names = [n.operation.name for n in _keras.graph_nodes(function)]
        check(names[-2:] == ["first", "second"] or names[-3:-1] == ["first", "second"],
              f"the retraced call shows the layers inside (got {names})")
    # The fresh inputs have the call's shapes, unknown sizes made 1 (batch) or 2.
    x = np.random.default_rng(0).normal(size=(1, 4)).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(function([x])),
                               keras.ops.convert_to_numpy(pair(x, scale=2.0)), rtol=1e-6)


# -- nothing outside _keras.py -------------------------------------------------

# Keras' private names that keras-lottery has used (and `_keras.py` now
# holds), flagged wherever they appear, strings included.
KNOWN = {
    "_flatten_layers", "_keras_history", "_inbound_nodes", "_outbound_nodes", "_functional",
    "_nodes_by_depth", "_layout", "_value", "_is_default", "_tracker", "_trainable_variables",
    "_non_trainable_variables", "_untrack_variable", "_query_dense", "_key_dense",
    "_value_dense", "_output_dense", "_gate_dense", "_kernel", "_embeddings",
}
PRIVATE = re.compile(r"_(?!_)\w+\Z")
ATTRIBUTE_FUNCTIONS = {"getattr", "hasattr", "setattr", "delattr"}
# A string that names a file, not an attribute path ("001_masks.npz").
FILE_NAME = re.compile(r"\.(npz|npy|json|keras|h5|txt|csv|png|pdf|svg|lock|gz)\Z")


def _keras_private_names():
    """The private attribute names of Keras' own objects, in this release."""
    x = keras.Input((3,))
    dense = keras.layers.Dense(2)
    y = dense(x)
    objects = [
        dense, keras.Model(x, y), keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]),
        keras.callbacks.Callback(), keras.Variable(np.ones(2)), y, keras.optimizers.SGD(),
        keras.layers.MultiHeadAttention(2, 2), keras.layers.LSTM(2), _keras.made_by(y)[1],
    ]
    names = set(KNOWN)
    for obj in objects:
        names.update(name for name in [*dir(obj), *dir(type(obj))] if PRIVATE.match(name))
    return names


def _trees():
    return {path: ast.parse(path.read_text(), str(path)) for path in sorted(PACKAGE.rglob("*.py"))}


def _own_names(trees):
    """The private names keras-lottery defines: modules, functions, classes,
    variables, arguments, and attributes it sets on `self`."""
    names = {path.stem for path in trees}
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, ast.alias):
                names.add((node.asname or node.name).split(".")[0])
            elif (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
                  and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                names.add(node.attr)
    return {name for name in names if PRIVATE.match(name)}


def _docstrings(tree):
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _text(node):
    """A string constant or f-string as text, `{}` for each formatted part."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(part.value if isinstance(part, ast.Constant) else "{}"
                       for part in node.values)
    return None


def _private_uses(tree, ours):
    """`(line, what)` for each use of a private name that is not `ours`."""
    docstrings = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and PRIVATE.match(node.attr) and not ours(node.attr):
            yield node.lineno, f"`.{node.attr}`"
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ATTRIBUTE_FUNCTIONS and len(node.args) > 1):
            name = _text(node.args[1])
            if name and PRIVATE.match(name.replace("{}", "x")) and not ours(name):
                yield node.lineno, f"`{node.func.id}(..., {name!r})`"
        elif isinstance(node, (ast.Constant, ast.JoinedStr)) and id(node) not in docstrings:
            text = _text(node)
            if text is None:
                continue
            parts = text.split(".")
            if text in KNOWN:
                yield node.lineno, f"{text!r}"
            elif isinstance(node, ast.JoinedStr) and re.fullmatch(r"_[\w{}]*", text) and not ours(
                    text.split("{")[0]):
                yield node.lineno, f"an attribute name made at run time, f{text!r}"
            elif (len(parts) > 1 and all(re.fullmatch(r"[\w{}]+", part) for part in parts)
                  and not FILE_NAME.search(text)
                  and any(part.startswith("_") and not part.startswith("__") and not ours(part)
                          for part in parts)):
                yield node.lineno, f"the attribute path {text!r}"
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                       else [alias.name for alias in node.names])
            if any(m.split(".")[:2] in (["keras", "src"], ["keras_hub", "src"]) for m in modules):
                yield node.lineno, f"an import of {', '.join(modules)}"
        elif (isinstance(node, ast.Attribute) and node.attr == "src"
              and isinstance(node.value, ast.Name) and node.value.id in ("keras", "keras_hub")):
            yield node.lineno, f"`{node.value.id}.src`"


def test_no_module_but_keras_py_uses_private_keras_api():
    trees = _trees()
    keras_private = _keras_private_names()
    own = _own_names(trees) - keras_private

    def ours(name):
        # Our own attributes on Keras objects are all named `_keras_lottery_...`.
        return name.startswith("_keras_lottery") or name in own

    found = [f"{path.relative_to(PACKAGE.parent)}:{line}: {what}"
             for path, tree in trees.items() if path != PACKAGE / "_keras.py"
             for line, what in _private_uses(tree, ours)]
    assert not found, (
        "Expected private Keras API in keras_lottery/_keras.py only (a function there with "
        "why no public API serves, and a test here). Received:\n" + "\n".join(found))


@pytest.mark.parametrize("source, flagged", [
    ("model._flatten_layers(recursive=True)", "`._flatten_layers`"),
    ("getattr(tensor, '_keras_history', None)", "'_keras_history'"),
    ("getattr(layer, f'_{name}_dense')", "getattr(..., '_{}_dense')"),
    ("paths = {f'_{name}_dense.kernel': 'attention'}", "attribute path"),
    ("for key in (name, f'_{name}'): pass", "made at run time"),
    ("from keras.src.layers.convolutional.base_conv import BaseConv", "keras.src"),
    ("import keras.src.models", "keras.src"),
    ("mask._layout = layout", "`._layout`"),
    ("self._tracker.unlock()", "`._tracker`"),
])
def test_the_scan_finds_private_keras_uses(source, flagged):
    uses = list(_private_uses(ast.parse(source), lambda name: name.startswith("_keras_lottery")))
    assert any(flagged in what for _, what in uses), f"{source!r} not flagged: {uses}"


def test_the_scan_leaves_our_own_private_names():
    source = ("owner.__dict__['_keras_lottery_masks'] = {}\n"
              "layer._owner_of('kernel')\n"
              "getattr(type(layer), '_keras_lottery_view_of', None)\n"
              "name = f'{path}_mask'\n"
              "files = '001_masks.npz'\n")
    own = _own_names({Path("x.py"): ast.parse("def _owner_of(self): pass")})
    assert list(_private_uses(ast.parse(source),
                              lambda n: n.startswith("_keras_lottery") or n in own)) == []
