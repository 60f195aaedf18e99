"""KerasHub models, built small from their classes (nothing downloaded): masked
by copy and in place with identical outputs, every kernel and embedding
table masked, saved and reloaded, and searched with exact zeros and rewinds."""

import keras
import numpy as np
import pytest
from helpers import to_numpy

import keras_lottery as kl

def _keras_hub():
    """KerasHub, or why it cannot run here: not installed, or made for a newer
    Keras than this one (CI also runs the oldest Keras keras-lottery takes)."""
    from importlib import metadata

    def version(text):
        return tuple(int(part) for part in text.split(".")[:3] if part.isdigit())

    try:
        needed = next((r.split(">=")[1].split(",")[0] for r in metadata.requires("keras-hub") or []
                       if r.replace(" ", "").startswith("keras>=")), "0")
    except metadata.PackageNotFoundError:
        return None, "KerasHub is not installed (pip install keras-lottery[hub])"
    if version(keras.version()) < version(needed):
        return None, f"KerasHub needs keras>={needed}; this is Keras {keras.version()}"
    import keras_hub

    return keras_hub, None


keras_hub, why_not = _keras_hub()
if keras_hub is None:
    pytest.skip(why_not, allow_module_level=True)

VOCABULARY, LENGTH = 40, 8


def bert():
    return keras_hub.models.BertBackbone(
        vocabulary_size=VOCABULARY, num_layers=2, num_heads=2, hidden_dim=8,
        intermediate_dim=16, max_sequence_length=LENGTH)


def gpt2():
    return keras_hub.models.GPT2Backbone(
        vocabulary_size=VOCABULARY, num_layers=2, num_heads=2, hidden_dim=8,
        intermediate_dim=16, max_sequence_length=LENGTH)


def llama():
    # Grouped-query attention: 4 query heads share 2 key/value heads.
    return keras_hub.models.LlamaBackbone(
        vocabulary_size=VOCABULARY, num_layers=2, num_query_heads=4, num_key_value_heads=2,
        hidden_dim=8, intermediate_dim=16)


def gemma():
    return keras_hub.models.GemmaBackbone(
        vocabulary_size=VOCABULARY, num_layers=2, num_query_heads=2, num_key_value_heads=1,
        hidden_dim=8, intermediate_dim=16, head_dim=4)


BACKBONES = {"bert": bert, "gpt2": gpt2, "llama": llama, "gemma": gemma}


def batch(model, n=4, seed=0):
    rng = np.random.default_rng(seed)
    padding = np.ones((n, LENGTH), "int32")
    padding[:, -2:] = 0
    x = {"token_ids": rng.integers(1, VOCABULARY, size=(n, LENGTH)).astype("int32"),
         "padding_mask": padding}
    if "segment_ids" in model.input:
        x["segment_ids"] = np.zeros((n, LENGTH), "int32")
    return x


def outputs(model, x):
    return [to_numpy(y) for y in keras.tree.flatten(model(x))]


def kernels(model):
    """Every trainable weight of two or more axes that is not a bias: the
    projections, feed-forward kernels and embedding tables."""
    return [v for v in model.trainable_weights
            if len(v.shape) >= 2 and "bias" not in v.name]


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_backbones_mask_every_kernel_and_keep_their_class_and_outputs(name, tmp_path):
    model = BACKBONES[name]()
    x = batch(model)
    expected = outputs(model, x)
    copy = kl.prunable(model)
    assert type(copy) is not type(model) and isinstance(copy, type(model))
    assert type(copy).__name__ == type(model).__name__ and not kl.masked_layers(model)
    masked = {id(p.weight) for layer in kl.masked_layers(copy)
              for p in layer.get_prunable_weights()}
    assert masked == {id(v) for v in kernels(copy)}  # Only LayerNorm scales and biases stay dense.
    report = kl.sparsity_report(copy)
    assert report.prunable_share > 0.85
    assert {row.path.split("/")[-1] for row in report.unmasked} <= {
        "gamma", "beta", "scale", "bias"}
    for got, want in zip(outputs(copy, x), expected, strict=True):
        np.testing.assert_array_equal(got, want)
    assert kl.prunable(model, in_place=True) is model
    assert len(kl.get_masks(model)) == len(kl.get_masks(copy))
    for got, want in zip(outputs(model, x), expected, strict=True):
        np.testing.assert_array_equal(got, want)
    masks = kl.random_prune(kl.get_masks(model), rate=0.5, seed=1)
    kl.apply_masks(model, masks)
    pruned = outputs(model, x)
    model.save(tmp_path / "masked.keras")
    loaded = keras.models.load_model(tmp_path / "masked.keras")
    assert type(loaded).__name__ == type(model).__name__
    for loaded_mask, mask in zip(kl.get_masks(loaded).values(), masks.values(), strict=True):
        np.testing.assert_array_equal(loaded_mask, mask)
    for got, want in zip(outputs(loaded, x), pruned, strict=True):
        np.testing.assert_array_equal(got, want)
    kl.strip(model, in_place=True)
    assert type(model) is type(BACKBONES[name]()) and not kl.masked_layers(model)
    for got, want in zip(outputs(model, x), pruned, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def classifier():
    return keras_hub.models.BertTextClassifier(bert(), num_classes=3, preprocessor=None,
                                               dropout=0.0)


def causal_lm():
    return keras_hub.models.LlamaCausalLM(llama(), preprocessor=None)


def task_data(task, n=16):
    x = batch(task.backbone, n, seed=2)
    if isinstance(task, keras_hub.models.CausalLM):
        y = np.roll(x["token_ids"], -1, axis=1)
        return x, y, x["padding_mask"].astype("float32")
    return x, np.arange(n) % 3, None


@pytest.mark.parametrize("build", [classifier, causal_lm], ids=["bert_classifier", "llama_lm"])
def test_tasks_are_searched_with_exact_zeros_and_rewinds(build, tmp_path):
    task = build()
    x, y, weights = task_data(task)
    task.compile(optimizer=keras.optimizers.Adam(1e-3),
                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    kl.prunable(task, in_place=True)
    theta0 = {v.path: to_numpy(v) for v in task.trainable_variables}
    search = kl.TicketSearch(task, rounds=2, prune_rates=0.5, epochs=1, batch_size=8,
                             verbose=0, directory=str(tmp_path / "run"))
    fit = {} if weights is None else {"sample_weight": weights}
    result = search.run(x, y, validation_data=(x, y), **fit)
    assert [r.round for r in result.records] == [0, 1, 2]
    ticket = search.ticket(2)
    masks = kl.get_masks(ticket)
    assert len(masks) == len(kernels(ticket))
    for variable in ticket.trainable_variables:
        value, start = to_numpy(variable), theta0[variable.path]
        mask = masks.get(variable.path)
        if mask is None:
            np.testing.assert_array_equal(value, start)
            continue
        once = mask.size - kl.prune_count(mask.size, 0.5)
        assert mask.sum() == once - kl.prune_count(once, 0.5)  # Two rounds at 0.5 each.
        np.testing.assert_array_equal(value[mask], start[mask])
        assert np.all(value[~mask] == 0)
    trained = {v.path: to_numpy(v) for v in search.model.trainable_variables}
    for path, mask in kl.get_masks(search.model).items():
        assert np.all(trained[path][~mask] == 0), f"{path} trained through its mask"


@pytest.mark.slow  # A KerasHub BERT traced, searched by units and shrunk.
def test_a_bert_loses_feed_forward_units_for_real_and_keeps_heads_saying_why(tmp_path):
    """Structured tickets inside KerasHub blocks: a search by neurons prunes
    whole feed-forward units (each block's intermediate kernel columns with
    the output kernel's rows), and `shrink` removes them; a block's heads
    are found and masked, but its config derives the head size from the
    number of heads, so `shrink` keeps them and says so."""
    from keras_lottery.structured.unit_masks import remove_units
    from keras_lottery.structured.unit_groups import unit_groups

    task = classifier()
    task.compile(optimizer=keras.optimizers.Adam(1e-3),
                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    kl.prunable(task, in_place=True)
    groups = {group.name: group for group in unit_groups(task)}
    ff = [groups[f"transformer_layer_{i}/feedforward_intermediate_dense"] for i in (0, 1)]
    heads = [groups[f"transformer_layer_{i}/self_attention_layer"] for i in (0, 1)]
    assert all(group.blocked is None for group in ff + heads)
    assert [s.path for s in ff[0].consumers] == ["transformer_layer_0/feedforward_output_dense/kernel"]
    x, y, _ = task_data(task)
    search = kl.TicketSearch(task, rounds=1, prune_rates=0.5, structure="neurons", epochs=1,
                             batch_size=8, verbose=0, directory=str(tmp_path / "run"))
    search.run(x, y, validation_data=(x, y))
    ticket = search.ticket(1)
    masks = kl.get_masks(ticket)
    for group in ff:
        kernel = masks[group.producers[0].path]
        kept = kernel.any(axis=0)
        assert kept.sum() == 8 and np.all(kernel[:, ~kept] == 0)  # Half the units, whole.
        assert np.all(masks[group.consumers[0].path][~kept] == 0)
    masks = remove_units(heads[0], np.array([True, False]), masks)  # One head of the first block.
    kl.apply_masks(ticket, masks)
    small = kl.shrink(ticket, verbose=False)
    reports = {tuple(r.layers): r for r in kl.shrink_report(ticket)}
    assert reports[(ff[0].name,)].kept == 8
    head_report = reports[(heads[0].name,)]
    assert head_report.kept == 2 and head_report.dead_kept == 1
    assert "TransformerEncoder" in head_report.reason and "no setting" in head_report.reason
    # Each block lost 8 units: 8 kernel columns of 8 inputs, 8 biases, 8 output rows of 8.
    assert kl.strip(ticket).count_params() - small.count_params() == 2 * (64 + 8 + 64)
    probe = batch(task.backbone, seed=5)
    np.testing.assert_allclose(to_numpy(small(probe)), to_numpy(ticket(probe)),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_the_pretrained_bert_example_runs_offline(tmp_path):
    """Pretraining, the preset folder, the search from it and the table, at a tiny size."""
    import os
    import pathlib
    import subprocess
    import sys

    root = pathlib.Path(__file__).parents[1]
    data = tmp_path / "data" / "text"
    data.mkdir(parents=True)
    words = ("first", "second", "small", "large", "fast", "slow", "new", "old")
    sentences = [f"the {a} program was written by a {b} hacker in the {c} days ."
                 for a in words for b in words for c in words]  # 512 different sentences
    import gzip

    with gzip.open(data / "jargon.txt.gz", "wt") as file:
        file.write("\n\n".join(" ".join(sentences[i:i + 4]) for i in range(0, 512, 4)))
    subprocess.run([sys.executable, str(root / "examples" / "pretrained_bert_tickets.py"),
                    "--smoke", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "out")],
                   check=True, env=os.environ.copy(), capture_output=True, timeout=600)
    table = (tmp_path / "out" / "table.md").read_text()
    assert "| 1 | 80.0% |" in table and "No pretraining" in table
    restored = keras_hub.models.BertBackbone.from_preset(str(tmp_path / "out" / "pretrained"))
    assert restored.num_layers == 1


@pytest.mark.slow
def test_a_masked_kerashub_file_without_kerashub_names_the_extra(tmp_path):
    import os
    import subprocess
    import sys

    model = bert()
    kl.prunable(model, in_place=True)
    model.save(tmp_path / "bert.keras")
    script = ("import sys; sys.modules['keras_hub'] = None\n"
              "import keras, keras_lottery\n"
              f"keras.saving.load_model({str(tmp_path / 'bert.keras')!r})\n")
    done = subprocess.run([sys.executable, "-c", script], env=os.environ.copy(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "pip install keras-lottery[hub]" in done.stderr


def test_bad_in_place_is_refused():
    with pytest.raises(ValueError, match=r"Expected `in_place` True or False. Received: "
                                         r"in_place='yes'"):
        kl.prunable(bert(), in_place="yes")
