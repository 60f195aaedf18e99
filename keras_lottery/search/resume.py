"""Whether a saved search may be resumed: a fingerprint of everything that decides its numbers.

The fingerprint holds the search's settings, the model's compile
configuration (optimizer with its schedule, loss, metrics), a fingerprint of
every data set (shapes, dtypes and a hash of a sample), the backend, the
file format, the layers' classes and configurations (without their names)
and the model's variables by position (shape and dtype): not by path, since Keras names layers afresh (`dense_2`, `dense_3`) each time a
model is built in the same process. Paths are kept beside, to translate a
saved search's arrays to the rebuilt model's paths.
"""

import dataclasses
import hashlib
import json
import re

import keras
import numpy as np

from keras_lottery import _keras
from keras_lottery.pruning.criteria import Criterion
from keras_lottery.search.settings import json_roundtrip
from keras_lottery.structured.structures import Structure

FORMAT = 2  # Bumped when the run directory's layout changes.
# Settings that only say where the ladder stops: a finished search goes further
# down with more rounds, a lower target or more transferred mask sets (the
# ones trained unchanged: see `_transfer_extends`), its rounds unchanged.
WHERE_IT_STOPS = ("rounds", "target_density", "transfer")
# Settings that change what a record stores, not any number in it: a search
# resumes whatever they were.
RECORDING_ONLY = ("test_curves", "instability", "path_points", "path_normalization")
# Settings added after searches were saved without them: their defaults then.
ADDED_LATER = {"rewind_candidates": None, "stability_tolerance": 0.02,
               "stability_network": "dense", "data_order": "per_training"}


def fingerprint(model, config, compile_config, keys, data, vocabulary=None) -> dict:
    """What a resume must match.

    Args:
        model: the masked model.
        config: the `SearchConfig`.
        compile_config: `model.get_compile_config()` as the search took it.
        keys: `{state key: variable}` of the model (`state.state_variables`).
        data: `{"x": ..., "y": ..., "validation": ..., "test": ...}`.
        vocabulary: the `text.Vocabulary` of text data, or None.
    """
    return json_roundtrip({
        "format": FORMAT,
        "backend": keras.backend.backend(),
        "config": config.to_json(),
        "compile": _comparable(compile_config),
        "data": {name: data_fingerprint(value) for name, value in data.items()},
        "vocabulary": None if vocabulary is None else json.loads(vocabulary.to_json()),
        "architecture": architecture(model),
        "model": [[list(v.shape), str(v.dtype)] for v in keys.values()],
        "paths": list(keys),
    })


def differences(saved: dict, current: dict) -> list[str]:
    """What differs between two fingerprints, named for the user: settings by
    name (`"rounds"`), then `"compile"`, `"data.x"`, `"backend"`, `"model"`."""
    config = _upgraded(saved.get("config", {}))
    found = sorted(
        key for key in set(config) | set(current["config"])
        if config.get(key) != current["config"].get(key)
        and key not in WHERE_IT_STOPS + RECORDING_ONLY
    )
    if not _transfer_extends(config.get("transfer"), current["config"].get("transfer")):
        found.insert(0, "transfer")
    # Before vocabularies were kept, a search had none on file: its data decide.
    if "vocabulary" in saved and saved["vocabulary"] != current.get("vocabulary"):
        found.append("vocabulary")
    for part in ("format", "backend", "compile", "model"):
        if _part(saved, part, current["backend"]) != _part(current, part, current["backend"]):
            found.append(part)
    # Fingerprints written before layers were compared have no "architecture".
    if "architecture" in saved and saved["architecture"] != current["architecture"]:
        found.append("architecture")
    for name in current["data"]:
        if saved.get("data", {}).get(name) != current["data"][name]:
            found.append(f"data.{name}")
    return found


def _transfer_extends(saved, current) -> bool:
    """Whether one list of transferred mask sets begins with the other (or
    neither search transferred): more sets go on, fewer stop sooner."""
    if saved is None or current is None:
        return saved is None and current is None
    shorter = min(len(saved), len(current))
    return saved[:shorter] == current[:shorter]


def _part(fingerprint, part, backend):
    """One part of a fingerprint as compared: JAX always compiles, so there
    `jit_compile` (which the presets' default changed from "auto" to True)
    decides nothing."""
    value = fingerprint.get(part)
    if part == "compile" and backend == "jax" and isinstance(value, dict):
        value = {k: v for k, v in value.items() if k != "jit_compile"}
    return value


def _upgraded(config: dict) -> dict:
    """A saved configuration in today's terms: `global_pruning` became
    `budget`, and a search without a `criterion` pruned by `large_final`."""
    config = dict(config)
    if config and "budget" not in config:
        config["budget"] = "global" if config.pop("global_pruning", False) else "uniform"
    if config and "criterion" not in config:
        config["criterion"] = json_roundtrip(dataclasses.asdict(Criterion()))
    if config and "structure" not in config:  # Saved before structures: weight by weight.
        config["structure"] = json_roundtrip(dataclasses.asdict(Structure()))
    for key, default in ADDED_LATER.items():
        if config:
            config.setdefault(key, default)
    return config


def explain(differences_found, saved, current) -> str:
    """A sentence per difference that the plain key would not make clear."""
    notes = []
    if "transfer" in differences_found:
        notes.append(_transfers(saved.get("config", {}).get("transfer"),
                                current["config"].get("transfer")))
    if "vocabulary" in differences_found:  # First: it explains the data and model that follow.
        notes.append(_vocabularies(saved.get("vocabulary"), current.get("vocabulary")))
    if "model" in differences_found:
        notes.append(
            f"the saved search's model has {len(saved.get('model', []))} variables "
            f"({_shapes(saved.get('model', []))}), this one {len(current['model'])} "
            f"({_shapes(current['model'])})"
        )
    if "backend" in differences_found:
        notes.append(f"it was run on {saved.get('backend')}, this is {current['backend']}: "
                     "the same seed gives other numbers on another backend")
    if "compile" in differences_found:
        backend = current["backend"]
        where, then, now = first_difference(_part(saved, "compile", backend),
                                            _part(current, "compile", backend))
        if where.endswith("jit_compile"):
            hint = (f"compile with `jit_compile={then!r}` (`--jit-compile "
                    f"{str(then).lower()}`) to resume it: the presets and the command line "
                    "now compile with jit_compile=True")
        else:
            hint = ("a metric or loss numbered afresh in this session, `auc_1`, keeps its name "
                    "if you give it one: `AUC(name='auc')`")
        notes.append(f"the compile configuration differs at {where}: {then!r} then, {now!r} "
                     f"now ({hint})")
    if "architecture" in differences_found:
        where, then, now = first_difference(saved["architecture"], current["architecture"])
        notes.append(f"the layers differ at {where}: {then!r} then, {now!r} now")
    if "format" in differences_found:
        notes.append(f"it was written by another version of keras-lottery (format "
                     f"{saved.get('format', 1)}, this one writes {current['format']})")
    for name in ("x", "y", "validation", "test"):
        if f"data.{name}" in differences_found:
            notes.append(f"the {name} data differ "
                         f"({_describe(saved.get('data', {}).get(name))} then, "
                         f"{_describe(current['data'][name])} now)")
    return "; ".join(notes)


def _transfers(saved, current) -> str:
    def describe(sets):
        if sets is None:
            return "no transferred masks"
        return f"{len(sets)} mask sets of densities {[s['density'] for s in sets]}"

    text = f"the transferred masks differ: {describe(saved)} then, {describe(current)} now"
    if saved and current:
        first = next(i for i, (a, b) in enumerate(zip(saved, current)) if a != b)
        text += (f", from set {first} on (a list that only adds sets after the saved ones, or "
                 "stops sooner, resumes)")
    return text


def _vocabularies(saved, current) -> str:
    def describe(vocabulary):
        if vocabulary is None:
            return "no vocabulary (not text, or one given without it)"
        if vocabulary["level"] == "byte":
            return "byte ids (256)"
        return f"{len(vocabulary['symbols'])} characters"

    text = (f"the text's vocabulary differs: {describe(saved)} then, {describe(current)} now")
    if saved and current and saved["level"] == current["level"] == "char":
        gone = "".join(sorted(set(saved["symbols"]) - set(current["symbols"])))
        new = "".join(sorted(set(current["symbols"]) - set(saved["symbols"])))
        text += f" (only then: {gone!r}; only now: {new!r}"
        if not gone and not new:
            text += "; the same characters in another order"
        text += ")"
    return (text + ": the token ids mean other characters. Resume with the text the search "
            "ran on; to carry a model between texts, use level='byte'")


def first_difference(a, b, where="") -> tuple:
    """`(where, a's part, b's part)` at the first place two JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if a.get(key) != b.get(key):
                return first_difference(a.get(key), b.get(key), f"{where}.{key}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return first_difference(x, y, f"{where}[{index}]")
    return where.lstrip(".") or "the top", a, b


def architecture(model) -> list:
    """Each layer's class and configuration, without names, in model order."""
    found = []
    for layer in _keras.sublayers(model):
        try:
            config = _without_names(json_roundtrip(layer.get_config()))
        except Exception:  # noqa: BLE001 - no `get_config`, or one that fails (of another library).
            config = None
        found.append([type(layer).__name__, config])
    return json.loads(re.sub(r" at 0x[0-9a-fA-F]+", "", json.dumps(found)))


def _without_names(config):
    if isinstance(config, dict):
        return {k: _without_names(v) for k, v in config.items() if k != "name"}
    if isinstance(config, list):
        return [_without_names(v) for v in config]
    return config


def path_translation(saved: dict, current: dict) -> dict:
    """`{saved path: current path}` where the two models differ only by names."""
    return {old: new for old, new in zip(saved["paths"], current["paths"]) if old != new}


def data_fingerprint(data) -> dict | None:
    """Shapes, dtypes and a hash of a sample of `data` (arrays), or what can be
    known of it without iterating (datasets and loaders)."""
    if data is None:
        return None
    if isinstance(data, (tuple, list)) and not hasattr(data, "shape"):
        return {"parts": [data_fingerprint(part) for part in data]}
    if isinstance(data, dict):
        return {"parts": {key: data_fingerprint(value) for key, value in sorted(data.items())}}
    if hasattr(data, "shape") and hasattr(data, "dtype") and hasattr(data, "__len__"):
        array = np.asarray(keras.ops.convert_to_numpy(data)) if not isinstance(
            data, np.ndarray) else data
        rows = np.unique(np.linspace(0, len(array) - 1, min(len(array), 256)).astype(int))
        sample = np.ascontiguousarray(array[rows]) if len(array) else array
        return {"shape": list(array.shape), "dtype": str(array.dtype),
                "sample_sha256": hashlib.sha256(sample.tobytes()).hexdigest()}
    if hasattr(data, "element_spec"):  # tf.data.Dataset
        return {"type": "tf.data.Dataset", "element_spec": str(data.element_spec),
                "cardinality": int(data.cardinality())}
    found = {"type": type(data).__name__}
    if hasattr(data, "__len__"):
        found["length"] = len(data)
    return found


def _comparable(compile_config):
    """The compile configuration without what differs between two builds of one model."""
    config = json_roundtrip(compile_config)
    optimizer = config.get("optimizer")
    if isinstance(optimizer, dict) and isinstance(optimizer.get("config"), dict):
        optimizer["config"].pop("name", None)  # Numbered per process: adam, adam_1, ...
    # `run_eagerly` and `jit_compile` stay: graph, eager and XLA round differently.
    # A loss or metric given as an object without a config serializes as its
    # repr, whose memory address differs in every process.
    return json.loads(re.sub(r" at 0x[0-9a-fA-F]+", "", json.dumps(config)))


def _shapes(model):
    return ", ".join("x".join(map(str, shape)) or "scalar" for shape, _ in model[:6]) + (
        ", ..." if len(model) > 6 else "")


def _describe(data):
    if not data:
        return "none"
    if "shape" in data:
        return f"shape {tuple(data['shape'])} {data['dtype']}"
    if "parts" in data:
        parts = data["parts"].values() if isinstance(data["parts"], dict) else data["parts"]
        return ", ".join(_describe(part) for part in parts)
    return data.get("type", "?")
