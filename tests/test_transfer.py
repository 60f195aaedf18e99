"""Mask transfer: masks found on task A trained on task B, against random masks of their densities."""

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.search.run_directory import load_masks

TEXT_A = "to be or not to be, that is the question. " * 12
TEXT_B = "all the world's a stage, and all the men and women merely players. " * 8


def _lm():
    keras.utils.set_random_seed(0)
    model = kl.models.transformer_lm(256, 8, embed_dim=16, num_heads=2, ff_dim=24, num_blocks=1)
    model.compile(keras.optimizers.Adam(1e-2),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=False)
    return model


def _task_a(tmp_path):
    """Tickets of a language model on text A, two rounds, kept in a run directory."""
    text = kl.text.text_splits(TEXT_A, level="byte", sequence_length=8)
    search = kl.TicketSearch(_lm(), *text.train, rounds=2, prune_rates=0.5, epochs=1,
                             batch_size=8, directory=tmp_path / "a", verbose=0)
    search.run()
    return search


def _classifier(lm):
    """Task B: which text a window comes from, on the LM's body with a new head."""
    pooled = keras.layers.GlobalAveragePooling1D(name="pool")(lm.get_layer("ln_final").output)
    head = kl.layers.MaskedDense(2, name="head")(pooled)
    model = keras.Model(lm.input, head)
    model.compile(keras.optimizers.Adam(1e-2),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=False)
    return model


def _task_b():
    a = kl.text.text_splits(TEXT_A, level="byte", sequence_length=8)
    b = kl.text.text_splits(TEXT_B, level="byte", sequence_length=8)
    x = np.concatenate([a.train[0], b.train[0]])
    y = np.concatenate([np.zeros(len(a.train[0])), np.ones(len(b.train[0]))]).astype("int32")
    order = np.random.default_rng(0).permutation(len(x))
    return x[order], y[order]


@pytest.mark.slow  # Two searches end to end, a language model pretrained between them.
def test_masks_of_one_task_trained_on_another_against_random_masks(tmp_path):
    source = _task_a(tmp_path)
    found = load_masks(tmp_path / "a")
    assert sorted(found) == [0, 1, 2]
    for round_ in (1, 2):
        for path, mask in found[round_].items():
            np.testing.assert_array_equal(mask, source.masks(round_)[path])
    # The new head is not in the language model, nor its output layer in the classifier.
    shared = [{p: m for p, m in found[r].items() if not p.startswith("output/")} for r in (1, 2)]

    # Pretrained on text A (the source model from θ0, one epoch), then a classifier on it.
    lm = source.ticket(0)
    lm.fit(*kl.text.text_splits(TEXT_A, level="byte", sequence_length=8).train, batch_size=8,
           epochs=1, verbose=0)
    model = _classifier(lm)
    pretrained = kl.get_weights(model)
    x, y = _task_b()

    def search_b(transfer, classifier=model):  # The same model: JAX compiles it once.
        return kl.TicketSearch(classifier, x, y, transfer=transfer, controls=["random_pruning"],
                               initial_weights="current", epochs=1, batch_size=8,
                               validation_data=(x[:16], y[:16]), directory=tmp_path / "b",
                               verbose=0)

    first = search_b(shared[:1]).run()  # One set first; the second set goes on from there.
    search = search_b(shared)
    result = search.run()
    assert result.records[:3] == first.records
    assert [(r.round, r.kind) for r in result.records] == [
        (0, "ticket"), (1, "ticket"), (1, "random_pruning"), (2, "ticket"), (2, "random_pruning")]
    for round_, masks in enumerate(shared, start=1):
        ticket = search.masks(round_)
        random = search.masks(round_, "random_pruning")
        for path, mask in masks.items():
            np.testing.assert_array_equal(ticket[path], mask)  # Exactly the transferred masks,
            assert random[path].sum() == mask.sum()  # and random ones of the same densities,
        assert any((random[p] != m).any() for p, m in masks.items())  # elsewhere.
        assert ticket["head/kernel"].all()  # The head, not transferred: dense, as the model's.
        assert result.record(round_).density == pytest.approx(
            result.record(round_, "random_pruning").density)
        # Rewound to the pretrained weights where kept, exactly zero elsewhere.
        weights = kl.get_weights(search.ticket(round_))
        for path, mask in ticket.items():
            np.testing.assert_array_equal(weights[path], np.where(mask, pretrained[path], 0))
    assert result.record(2).density < result.record(1).density < 1
    assert not list((tmp_path / "b").glob("trained/*"))  # Nothing is pruned from them.

    # Resumed, on a rebuilt classifier, with the same masks: nothing trains again. Other
    # masks: refused, naming them.
    assert search_b(shared, _classifier(lm)).run().records == result.records
    with pytest.raises(ValueError, match=r"differs in \['transfer'.*from set 0 on"):
        search_b([shared[1], shared[0]]).run()
    with pytest.raises(ValueError, match=r"load_masks. gives \{round: masks\}"):
        search_b(found)


def test_transferred_masks_are_checked_before_any_work(tmp_path):
    model = _lm()
    masks = kl.get_masks(model)
    path = "ff_0_up/kernel"
    x = np.zeros((8, 8), "int32")
    bad = {
        "a mask dict": [],
        "a non-empty dict": [{}],
        "unknown paths": [{"head/kernel": np.ones((16, 2))}],
        "shape": [{path: np.ones((3, 3))}],
        "only 0 and 1": [{path: np.full(masks[path].shape, 0.5)}],
    }
    for expected, transfer in bad.items():
        with pytest.raises(ValueError, match=expected) as error:
            kl.TicketSearch(model, x, x, transfer=transfer, directory=tmp_path / "x")
        assert "transfer" in str(error.value)
    for clash in ({"one_shot": [0.5]}, {"target_density": 0.5}, {"criterion": "movement"},
                  {"rounds": 2}, {"prune_rates": 0.5}, {"budget": "erk"},
                  {"structure": "neurons"}):
        with pytest.raises(ValueError, match="`transfer` alone to decide the masks"):
            kl.TicketSearch(model, x, x, transfer=[masks], **clash)
    # One rule for what is given: a setting at its default is not (the default criterion).
    kl.TicketSearch(model, x, x, transfer=[masks], criterion="large_final", budget="uniform")
    with pytest.raises(ValueError, match="without 'inverted'"):
        kl.TicketSearch(model, x, x, transfer=[masks], controls=["inverted"])
    with pytest.raises(ValueError, match="`transfer` alone"):  # Before the data loads.
        kl.TicketSearch.from_preset("mlp_mnist1d", transfer=[masks], rounds=2,
                                    data_dir=tmp_path / "no data here")
