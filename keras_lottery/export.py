"""Tickets out of a run directory, without the code or the data that found them.

A search writes its model's Keras config (`model.json`) into its run
directory whenever it runs (so an older directory gets one too), so that
`load_ticket(path, round)` can rebuild the model, set the rewind weights (θ0,
or iteration k's) and that round's masks: what `TicketSearch.ticket(round)`
returns, with no search to build. The CLI's `export` saves it as a `.keras`
file, masked, plain (`strip`) or shrunk (`shrink`), on any backend.

A run directory keeps the trained weights of its last round's prunable
weights only (to prune from), not its biases or statistics: tickets leave as
the untrained subnetworks the lottery is about, ready to train.
"""

import json

import keras
import numpy as np

from keras_lottery import resume, state
from keras_lottery.masks import apply_masks
from keras_lottery.run_directory import RunDirectory, load_result, masks_name

MODEL_NAME = "model.json"
FORMS = ("plain", "shrunk", "masked")


def write_model_config(directory, model) -> bool:
    """Writes `model.json` into `directory` (a `RunDirectory`), at every
    `run()`: a missing or damaged one is written again from the model, which
    the resume check has just found to be the saved one.

    Returns whether it was written: a model Keras cannot serialize gets none,
    and its tickets come out of `TicketSearch.ticket` in Python only.
    """
    try:
        config = json.loads(model.to_json())
    except Exception:  # noqa: BLE001 - whatever Keras raises, the search goes on without it.
        return False
    directory.write_json(MODEL_NAME, config)
    return True


def load_ticket(path, round=None):  # noqa: A002 - mirrors TicketSearch.ticket
    """The masked model of round `round`'s ticket (default: the last finished)
    in the run directory at `path`: its masks on the rewind weights."""
    result = load_result(path)  # Refuses a folder that holds no search.
    finished = sorted(r.round for r in result.records if r.kind == "ticket")
    if not finished:
        raise ValueError(f"Expected a run directory with a finished ticket round. Received "
                         f"{path}, where none has finished yet.")
    chosen = finished[-1] if round is None else round
    if chosen not in finished:
        raise ValueError(f"Expected `round` among the finished ticket rounds {finished} of "
                         f"{path}. Received: round={round!r}")
    directory = RunDirectory(path)
    if not directory.exists(MODEL_NAME):
        raise ValueError(
            f"Expected {MODEL_NAME} in the run directory {path}, the model to rebuild. Received "
            "none: the search ran before keras-lottery wrote it (running it again adds it, "
            "training nothing that is done), or Keras cannot serialize its model (a subclassed "
            "model without get_config). In Python, TicketSearch(model, ..., "
            "directory=path).ticket(round) gives the ticket.")
    config = directory.read_json(MODEL_NAME)  # A damaged one is named, with the way out.
    try:
        model = keras.models.model_from_json(json.dumps(config))
    except Exception as error:  # noqa: BLE001 - named for the user with the way out.
        raise ValueError(
            f"Expected {path}/{MODEL_NAME} to rebuild the search's model. Received one Keras "
            f"cannot rebuild ({type(error).__name__}: {error}); import the module that defines "
            "its custom layers first, or use TicketSearch(...).ticket(round) in Python.") from None
    saved = directory.read_json("search.json")
    keys = list(state.state_variables(model))
    if len(keys) != len(saved.get("paths", [])):
        raise ValueError(
            f"Expected {path}/{MODEL_NAME} to describe the model the search saved weights of "
            f"({len(saved.get('paths', []))} variables). Received a model of {len(keys)}: the "
            "file does not belong to this run directory.")
    rename = resume.path_translation(saved, {"paths": keys})
    rewind = "theta0.npz" if not saved["config"].get("rewind_step") else "rewind.npz"
    state.restore(model, _renamed(directory.read_arrays(rewind), rename))
    apply_masks(model, _renamed(directory.read_arrays(masks_name(chosen)), rename))
    return model


def export_ticket(path, out, round=None, form="plain"):  # noqa: A002
    """Saves round `round`'s ticket at `out` (a `.keras` file) as `form`:
    "plain" (stock Keras layers, pruned weights zero), "shrunk" (pruned units
    removed, `keras_lottery.shrink`) or "masked" (the masked layers, to train
    with the mask fixed; loading it needs `import keras_lottery`).

    Returns the saved model.
    """
    from keras_lottery.conversion import strip
    from keras_lottery.shrink import shrink

    if form not in FORMS:
        raise ValueError(f"Expected `form` among {FORMS}. Received: form={form!r}")
    if not str(out).endswith(".keras"):
        raise ValueError(f"Expected `out` to be a file name ending in .keras (the Keras "
                         f"format). Received: out={str(out)!r}")
    ticket = load_ticket(path, round)
    model = {"plain": strip, "shrunk": shrink, "masked": lambda m: m}[form](ticket)
    model.save(out)
    return model


def _renamed(arrays: dict, rename: dict) -> dict:
    return {rename.get(key, key): np.asarray(value) for key, value in arrays.items()}
