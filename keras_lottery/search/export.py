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
import pathlib
import warnings

import keras
import numpy as np

from keras_lottery import checks
from keras_lottery.search import resume, state
from keras_lottery.masking.masks import apply_masks
from keras_lottery.search.run_directory import RunDirectory, load_result, masks_name

MODEL_NAME = "model.json"
FORMS = ("plain", "shrunk", "masked")


def write_model_config(directory, model) -> bool:
    """Writes `model.json` into `directory` (a `RunDirectory`), at every
    `run()`: a missing or damaged one is written again from the model, which
    the resume check has just found to be the saved one.

    Returns whether it was written. A model Keras cannot serialize gets none
    (a warning says so), and its tickets come out of `TicketSearch.ticket`
    in Python only.
    """
    try:
        config = json.loads(model.to_json())
    except Exception as error:  # noqa: BLE001 - whatever Keras raises, the search goes on.
        warnings.warn(f"keras-lottery: the model's Keras config cannot be written "
                      f"({type(error).__name__}: {error}), so `keras-lottery export` and "
                      "load_ticket cannot rebuild this run's tickets; "
                      "TicketSearch.ticket(round) can.", stacklevel=3)
        return False
    directory.write_json(MODEL_NAME, config)
    return True


def load_ticket(path, round=None, custom_objects=None):  # noqa: A002 - as TicketSearch.ticket
    """The masked model of round `round`'s ticket (default: the last finished)
    in the run directory at `path`: its masks on the rewind weights.

    `custom_objects` (`{name: class or function}`) are those the model's own
    layers need to be rebuilt, as in `keras.models.load_model`. The model is
    compiled as the search compiled it where Keras can rebuild that (a loss
    or metric of your own needs `custom_objects` too); else it is left
    uncompiled, with a warning.
    """
    chosen = _finished_round(path, round)  # Checked before any model is built.
    directory = RunDirectory(path)
    if not directory.exists(MODEL_NAME):
        raise ValueError(
            f"Expected {MODEL_NAME} in the run directory {path}, the model to rebuild. Received "
            "none: the search ran before keras-lottery wrote it (running it again adds it, "
            "training nothing that is done), or Keras cannot serialize its model (the search "
            "warned). In Python, TicketSearch(model, ..., directory=path).ticket(round) gives "
            "the ticket.")
    config = dict(directory.read_json(MODEL_NAME))  # A damaged one is named, with the way out.
    # Rebuilt uncompiled: a ticket needs the layers, not the loss the search trained with.
    compile_config = config.pop("compile_config", None)
    try:
        with keras.saving.custom_object_scope(custom_objects or {}):
            model = keras.models.model_from_json(json.dumps(config))
    except Exception as error:  # noqa: BLE001 - named for the user with the way out.
        raise ValueError(
            f"Expected {path}/{MODEL_NAME} to rebuild the search's model. Received one Keras "
            f"cannot rebuild ({type(error).__name__}: {error}). Pass the model's own layers "
            "as custom_objects (from the shell: keras-lottery export --import MODULE), or use "
            "TicketSearch(...).ticket(round) in Python.") from None
    saved = directory.read_json("search.json")
    _check_same_model(model, saved, f"{path}/{MODEL_NAME}")
    rename = resume.path_translation(saved, {"paths": list(state.state_variables(model))})
    # rewind.npz: the rewind point when it is not θ0 (set, or chosen among candidates).
    rewinds = saved["config"].get("rewind_step") or saved["config"].get("rewind_candidates")
    rewind = "rewind.npz" if rewinds else "theta0.npz"
    state.restore(model, _renamed(directory.read_arrays(rewind), rename))
    apply_masks(model, _renamed(directory.read_arrays(masks_name(chosen)), rename))
    if compile_config:
        try:
            with keras.saving.custom_object_scope(custom_objects or {}):
                model.compile_from_config(compile_config)
        except Exception as error:  # noqa: BLE001 - the ticket is whole without it.
            warnings.warn(f"keras-lottery: the ticket is left uncompiled: the search's compile "
                          f"settings cannot be rebuilt ({type(error).__name__}: {error}); pass "
                          "its loss and metrics as custom_objects, or compile it yourself.",
                          stacklevel=2)
    return model


def export_ticket(path, out, round=None, form="plain", custom_objects=None):  # noqa: A002
    """Saves round `round`'s ticket at `out` (a `.keras` file) as `form`:
    "plain" (stock Keras layers, pruned weights zero), "shrunk" (pruned units
    removed, `keras_lottery.shrink`) or "masked" (the masked layers, to train
    with the mask fixed; loading it needs `import keras_lottery`). An
    existing file at `out` is replaced.

    Returns the saved model.
    """
    from keras_lottery.masking.conversion import strip
    from keras_lottery.structured.shrink import shrink

    if form not in FORMS:
        raise ValueError(f"Expected `form` among {FORMS}. Received: form={form!r}")
    out = pathlib.Path(checks.path("out", out))  # Path("") would read as ".".
    if out.suffix != ".keras" or out.is_dir():
        raise ValueError(f"Expected `out` to be a file name ending in .keras (the Keras "
                         f"format). Received: out={str(out)!r}")
    if not out.parent.is_dir():
        raise ValueError(f"Expected `out` in an existing folder. Received: out={str(out)!r}, "
                         f"whose folder {str(out.parent)!r} does not exist.")
    ticket = load_ticket(path, round, custom_objects)
    model = {"plain": strip, "shrunk": shrink, "masked": lambda m: m}[form](ticket)
    model.save(out)
    return model


def _finished_round(path, round):  # noqa: A002
    """The finished ticket round `round` names at `path` (None: the last); refuses others."""
    if not (pathlib.Path(path) / "search.json").exists():
        seeds = sorted(str(d) for d in pathlib.Path(path).glob("seed_*")
                       if (d / "search.json").exists())
        if seeds:
            raise ValueError(f"Expected one run directory. Received {path}, a folder of seed "
                             f"runs: pass one of {seeds}.")
    result = load_result(path)  # Refuses a folder that holds no search.
    finished = sorted(r.round for r in result.records if r.kind == "ticket")
    if not finished:
        raise ValueError(f"Expected a run directory with a finished ticket round. Received "
                         f"{path}, where none has finished yet.")
    chosen = finished[-1] if round is None else round
    if chosen not in finished:
        raise ValueError(f"Expected `round` among the finished ticket rounds {finished} of "
                         f"{path}. Received: round={round!r}")
    return chosen


def _check_same_model(model, saved, where):
    """Refuses a rebuilt model other than the one whose weights the run saved."""
    keys = state.state_variables(model)
    found = None
    if len(keys) != len(saved.get("paths", [])):
        found = f"{len(keys)} variables, not {len(saved.get('paths', []))}"
    elif "architecture" in saved and resume.architecture(model) != saved["architecture"]:
        where_, then, now = resume.first_difference(saved["architecture"],
                                                    resume.architecture(model))
        found = f"other layers (at {where_}: {then!r} saved, {now!r} rebuilt)"
    # Shapes only: a seed state's integer type differs between backends.
    elif "model" in saved and [list(v.shape) for v in keys.values()] != [
            shape for shape, _ in saved["model"]]:
        found = "variables of other shapes"
    if found:
        raise ValueError(f"Expected {where} to describe the model whose weights the run saved. "
                         f"Received one with {found}: the file does not belong to this run "
                         "directory. Run its search again to write it again.")


def _renamed(arrays: dict, rename: dict) -> dict:
    return {rename.get(key, key): np.asarray(value) for key, value in arrays.items()}
