"""Gradients and Hessian-gradient products through each backend's own autodiff.

Keras 3 has no backend-neutral `grad`, so this is the one place the package
calls TensorFlow, JAX or PyTorch directly. Both functions take `fn`, a
function of a list of backend tensors returning a scalar (written with
`keras.ops`, so it is the same on every backend), and the point to
differentiate at as numpy arrays; they return numpy arrays.
"""

import keras
import numpy as np


def gradient(fn, values):
    """`[d fn / d values[i]]` at `values`, with `fn`'s value: `(value, grads)`."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        value, grads = jax.value_and_grad(fn)(_tensors(values))
        return _numpy(value), [_numpy(g) for g in grads]
    if backend == "tensorflow":
        import tensorflow as tf

        tensors = _tensors(values)
        with tf.GradientTape() as tape:
            tape.watch(tensors)
            value = fn(tensors)
        return _numpy(value), _filled(tape.gradient(value, tensors), values)
    if backend == "torch":
        import torch

        tensors = [t.detach().requires_grad_(True) for t in _tensors(values)]
        value = fn(tensors)
        grads = torch.autograd.grad(value, tensors, allow_unused=True)
        return _numpy(value), _filled(grads, values)
    raise NotImplementedError(f"Expected the tensorflow, jax or torch backend. Received {backend}")


def hessian_gradient_product(fn, values):
    """`H g` at `values`: the Hessian of `fn` times its gradient `g` (held fixed)."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        tensors = _tensors(values)
        grads = jax.grad(fn)(tensors)
        fixed = [jax.lax.stop_gradient(g) for g in grads]
        return [_numpy(h) for h in jax.grad(lambda t: _dot(jax.grad(fn)(t), fixed))(tensors)]
    if backend == "tensorflow":
        import tensorflow as tf

        tensors = _tensors(values)
        with tf.GradientTape() as outer:
            outer.watch(tensors)
            with tf.GradientTape() as inner:
                inner.watch(tensors)
                value = fn(tensors)
            used = [g for g in inner.gradient(value, tensors) if g is not None]
            dot = _dot(used, [tf.stop_gradient(g) for g in used])
        return _filled(outer.gradient(dot, tensors), values)
    if backend == "torch":
        import torch

        tensors = [t.detach().requires_grad_(True) for t in _tensors(values)]
        grads = torch.autograd.grad(fn(tensors), tensors, create_graph=True, allow_unused=True)
        used = [(g, g.detach()) for g in grads if g is not None]
        dot = _dot(*zip(*used))
        return _filled(torch.autograd.grad(dot, tensors, allow_unused=True), values)
    raise NotImplementedError(f"Expected the tensorflow, jax or torch backend. Received {backend}")


def _tensors(values):
    return [keras.ops.convert_to_tensor(np.asarray(v)) for v in values]


def _dot(a, b):
    return sum(keras.ops.sum(x * y) for x, y in zip(a, b))


def _numpy(tensor):
    return np.asarray(keras.ops.convert_to_numpy(tensor))


def _filled(grads, values):
    """Gradients as numpy, zeros where a value did not reach `fn` (None)."""
    return [np.zeros(np.shape(v), np.float32) if g is None else _numpy(g)
            for g, v in zip(grads, values)]
