"""Entry point of the `keras-lottery` command: picks the Keras backend before Keras loads.

Importing anything from `keras_lottery` imports Keras, which fixes its
backend for the process, so `--backend` must be read before that; and with
no `KERAS_BACKEND` set, Keras picks TensorFlow, which a JAX-only or
torch-only install lacks. This module imports nothing heavy until both are
settled, then hands over to `keras_lottery.cli`.
"""

import importlib.util
import os
import sys

BACKENDS = ("tensorflow", "jax", "torch")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    backend = _flag_value(argv, "--backend")
    # Refused here, as argparse would: Keras fails on its first import otherwise,
    # with a traceback from inside Keras.
    for where, name in (("--backend", backend), ("KERAS_BACKEND", os.environ.get("KERAS_BACKEND"))):
        if name is not None and name not in BACKENDS:
            raise SystemExit(f"keras-lottery: expected {where} among {', '.join(BACKENDS)}. "
                             f"Received: {name!r}")
        if name is not None:
            break
    if backend:
        os.environ["KERAS_BACKEND"] = backend
    elif "KERAS_BACKEND" not in os.environ and importlib.util.find_spec("tensorflow") is None:
        installed = [b for b in ("jax", "torch") if importlib.util.find_spec(b) is not None]
        if installed:
            os.environ["KERAS_BACKEND"] = installed[0]
    from keras_lottery import cli

    return cli.main(argv)


def _flag_value(argv, flag):
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


if __name__ == "__main__":
    sys.exit(main())
