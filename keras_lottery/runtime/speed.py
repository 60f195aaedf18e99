"""How to compile a model so a search trains fastest on the current backend.

Measured in `benchmarks/` on LeNet-300-100 / MNIST (docs/benchmarks.md,
"Compile settings"), whole searches included, compile time counted:

- TensorFlow: Keras leaves XLA off on a CPU (`jit_compile="auto"`);
  `jit_compile=True` makes a masked epoch faster for about half a second of
  compilation more, once per search.
- PyTorch: `jit_compile=True` (`torch.compile`) about halves a masked
  epoch and fuses the mask multiply, for 15-30 s of compilation once per
  search: a win from about ten LeNet epochs on, a loss for a smoke run of a
  few hundred steps. It needs a C++ compiler for its CPU code; without one,
  pass `jit_compile=False`. With Keras 3.11 it cannot trace the loss, so
  there it stays off.
- JAX always compiles; `jit_compile` changes nothing there.
- `steps_per_execution`: one evaluation period (`eval_every`) per execution
  saves a dispatch per step on TensorFlow and JAX; Keras' torch trainer
  runs one step per execution only.
"""

import keras

from keras_lottery import checks

# The backend's fastest `jit_compile`, as measured (see above).
FASTEST_JIT_COMPILE = {"tensorflow": True, "jax": True, "torch": True}


def fast_compile_settings(eval_every: int | None = None) -> dict:
    """`jit_compile` and `steps_per_execution` for `model.compile` on this backend.

    Args:
        eval_every: the search's evaluation period in iterations; one
            execution runs that many steps where the backend allows it (the
            search evaluates between executions, so it must divide
            `eval_every`). None: one step per execution.

    Returns:
        `{"jit_compile": ..., "steps_per_execution": ...}`.

    Example:

    >>> model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"],
    ...               **kl.fast_compile_settings(eval_every=100))
    """
    eval_every = checks.integer("eval_every", eval_every, 1, none=True)
    backend = keras.backend.backend()
    steps = 1 if backend == "torch" or eval_every is None else eval_every
    jit_compile = FASTEST_JIT_COMPILE.get(backend, "auto")
    if backend == "torch" and _keras_version() < (3, 12):
        # torch.compile fails to trace Keras 3.11's loss (dynamo: "exception
        # table entry start instruction has no offset", in CompileLoss.call);
        # Keras 3.12 and later compile.
        jit_compile = False
    return {"jit_compile": jit_compile, "steps_per_execution": steps}


def _keras_version() -> tuple:
    parts = []
    for part in keras.version().split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def create_gradients(model) -> None:
    """Before a model's first compiled training step: on torch, gives each
    trainable variable a zero gradient where it has none.

    Keras' torch train step first clears the gradients (`zero_grad`), and
    `torch.compile` guards on whether each one exists: a first step traced
    with none would be traced and compiled again at the second step, once
    backward has made them (3-6 s more for LeNet-300-100 on a 2-core CPU,
    `benchmarks/` "Against the plain PyTorch loop"). The step clears them
    before its own backward pass, so no number changes. Other backends
    keep no gradients on their variables: nothing to do.
    """
    if keras.backend.backend() != "torch" or not model.jit_compile:
        return
    import torch  # The torch backend only: torch is installed there.

    for variable in model.trainable_variables:
        tensor = variable.value  # A torch Parameter on this backend.
        if tensor.grad is None:
            tensor.grad = torch.zeros_like(tensor)
