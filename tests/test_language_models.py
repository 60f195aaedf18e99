"""Character-level language models: shapes, causality, prune-rate kinds, metrics, a search."""

import math

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.pruning.rules import PruneRates


def _tiny(network, vocab=12, length=8):
    keras.utils.set_random_seed(0)
    if network == "transformer_lm":
        return kl.models.transformer_lm(vocab, length, embed_dim=16, num_heads=2, ff_dim=24,
                                        num_blocks=1)
    return kl.models.lstm_lm(vocab, length, embed_dim=8, units=12)


@pytest.mark.parametrize("network", ["transformer_lm", "lstm_lm"])
def test_logits_per_position_and_causal(network):
    model = _tiny(network)
    tokens = np.random.default_rng(0).integers(0, 12, (2, 8)).astype("int32")
    logits = keras.ops.convert_to_numpy(model(tokens))
    assert logits.shape == (2, 8, 12)
    changed = tokens.copy()
    changed[:, 5:] = (changed[:, 5:] + 1) % 12  # The future changes...
    after = keras.ops.convert_to_numpy(model(changed))
    np.testing.assert_allclose(after[:, :5], logits[:, :5], atol=1e-5)  # ...the past does not.
    assert not np.allclose(after[:, 5:], logits[:, 5:])


def test_prune_rate_kinds_of_the_literature():
    kinds = {n: {i.kind for i in kl.weight_infos(_tiny(n)).values()}
             for n in ("transformer_lm", "lstm_lm")}
    # "output" is a rate kind: the layer that makes the model's outputs (a dense one here).
    assert kinds["transformer_lm"] == {"embedding", "attention", "dense"}
    assert kinds["lstm_lm"] == {"embedding", "recurrent_input", "recurrent", "dense"}
    rates = PruneRates(0.2, by_kind={"embedding": 0.1, "attention": 0.3, "dense": 0.25,
                                     "output": 0.05})
    by_path = kl.rates_for(_tiny("transformer_lm"), rates)
    assert by_path["token_embedding/embeddings"] == 0.1
    assert by_path["attention_0/query/kernel"] == 0.3
    assert by_path["ff_0_up/kernel"] == 0.25
    assert by_path["output/kernel"] == 0.05


def test_bits_per_character_and_perplexity():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 5, (3, 4))
    logits = rng.normal(size=(3, 4, 5)).astype("float32")
    shifted = logits - logits.max(-1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    nats = -np.take_along_axis(log_softmax, y[..., None], -1).mean()
    bits, perplexity = kl.metrics.BitsPerCharacter(), kl.metrics.Perplexity()
    for metric in (bits, perplexity):
        metric.update_state(y[:2], logits[:2])  # Two updates: a mean over all 12 tokens.
        metric.update_state(y[2:], logits[2:])
    assert float(bits.result()) == pytest.approx(nats / math.log(2), rel=1e-5)
    assert float(perplexity.result()) == pytest.approx(math.exp(nats), rel=1e-5)
    uniform = kl.metrics.Perplexity()
    uniform.update_state(y, np.zeros((3, 4, 5), "float32"))
    assert float(uniform.result()) == pytest.approx(5.0, rel=1e-5)
    probabilities = kl.metrics.BitsPerCharacter(from_logits=False)
    probabilities.update_state(y, np.full((3, 4, 5), 0.2, "float32"))
    assert float(probabilities.result()) == pytest.approx(math.log2(5), rel=1e-5)
    again = keras.metrics.deserialize(keras.metrics.serialize(probabilities))
    assert isinstance(again, kl.metrics.BitsPerCharacter) and again.from_logits is False


@pytest.mark.parametrize("network", ["transformer_lm", "lstm_lm"])
def test_a_language_model_search_records_bits_per_character(network):
    splits = kl.text.text_splits("the cat sat on the mat; the dog sat on the log. " * 12,
                                 sequence_length=8, validation_fraction=0.1, test_fraction=0.1)
    model = _tiny(network, vocab=splits.vocabulary.size)
    model.compile(keras.optimizers.Adam(1e-2),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[kl.metrics.BitsPerCharacter(), kl.metrics.Perplexity()])
    x, y = splits.train
    search = kl.TicketSearch(model, x, y, rounds=1, epochs=2, batch_size=8, eval_every=4,
                             validation_data=splits.validation, test_data=splits.test,
                             prune_rates=PruneRates(0.5, by_kind={"output": 0.2}), verbose=0)
    result = search.run()
    ticket = result.record(1)
    for part in (ticket.final, ticket.early_stop):
        assert part["test_bits_per_character"] == pytest.approx(
            part["test_loss"] / math.log(2), rel=1e-4)
        assert part["test_perplexity"] == pytest.approx(math.exp(part["test_loss"]), rel=1e-4)
    assert "val_bits_per_character" in ticket.curves
    assert len(ticket.curves["val_perplexity"]) == len(ticket.curves["iteration"])
    masks = search.masks(1)
    assert masks["output/kernel"].mean() == pytest.approx(0.8, abs=0.01)  # Its own rate.
    assert masks["embedding/embeddings" if network == "lstm_lm"
                 else "token_embedding/embeddings"].mean() == pytest.approx(0.5, abs=0.01)
    weights = kl.get_weights(model)
    assert all(not np.any(weights[p][~m]) for p, m in masks.items())


@pytest.mark.slow  # A minute: the LM presets built, from Python and the command line.
def test_language_model_presets_from_python_and_the_command_line(tmp_path, capsys):
    from keras_lottery import cli

    (tmp_path / "text").mkdir()
    words = "the quick brown fox jumps over a lazy dog while seven wizards quietly hex".split()
    rng = np.random.default_rng(0)
    (tmp_path / "text" / "tiny_shakespeare.txt").write_text(
        " ".join(rng.choice(words, 5000)) + "\n")  # A local copy: no tfds, a small text.
    tiny = dict(limit=64, iterations=4, eval_every=2, rounds=1, jit_compile=False, verbose=0,
                sequence_length=16)
    search = kl.TicketSearch.from_preset("lstm_lm_tiny_shakespeare", data_dir=tmp_path, **tiny)
    result = search.run()
    assert search.model.output_shape == (None, 16, len(set(" ".join(words) + "\n")))
    assert {"val_bits_per_character", "val_perplexity"} <= set(result.record(1).curves)
    assert "test_bits_per_character" in result.record(1).early_stop
    assert result.record(1).density == pytest.approx(0.8, abs=0.01)
    assert "val bpc" in result.summary()
    out = tmp_path / "run"
    assert cli.main(["run", "--preset", "transformer_lm_tiny_shakespeare", "--data-dir",
                     str(tmp_path), "--limit", "64", "--iterations", "4", "--eval-every", "2",
                     "--rounds", "1", "--jit-compile", "false", "--verbose", "0",
                     "--sequence-length", "16",
                     "--out", str(out)]) == 0
    assert "test bpc" in capsys.readouterr().out
    assert set(kl.presets.PRESETS) >= {"transformer_lm_jargon", "lstm_lm_jargon",
                                       "transformer_lm_tiny_shakespeare",
                                       "lstm_lm_tiny_shakespeare"}
    with pytest.raises(ValueError, match="`sequence_length` only for a language model"):
        kl.TicketSearch.from_preset("mlp_mnist1d", sequence_length=16)
    for network, dataset in (("transformer_lm", "mnist"), ("mlp", "jargon")):
        with pytest.raises(ValueError, match=f"Received network='{network}' with "
                                             f"dataset='{dataset}'"):
            kl.TicketSearch.from_preset("mlp_mnist1d", network=network, dataset=dataset)


@pytest.mark.slow  # Pretraining, then a search on another text, end to end.
def test_tickets_of_a_pretrained_language_model_on_another_text(tmp_path):
    # Byte ids: one vocabulary for both texts, so the pretrained model reads the second.
    first = kl.text.text_splits("to be or not to be, that is the question. " * 20,
                                level="byte", sequence_length=8)
    second = kl.text.text_splits("all the world's a stage, and all the men players. " * 20,
                                 level="byte", sequence_length=8)
    model = _tiny("transformer_lm", vocab=256)
    model.compile(keras.optimizers.Adam(1e-2),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[kl.metrics.BitsPerCharacter()])
    model.fit(*first.train, batch_size=8, epochs=1, verbose=0)
    model.save(tmp_path / "pretrained.keras")
    pretrained = keras.models.load_model(tmp_path / "pretrained.keras")
    pretrained_weights = kl.get_weights(pretrained)
    with pytest.raises(ValueError, match="initial_weights='current'"):
        kl.TicketSearch(pretrained, *second.train, rounds=1)
    search = kl.TicketSearch(pretrained, *second.train, rounds=1, epochs=1, batch_size=8,
                             validation_data=second.validation, initial_weights="current",
                             verbose=0)
    search.run()
    ticket = search.ticket(1)
    weights, masks = kl.get_weights(ticket), search.masks(1)
    for path, mask in masks.items():  # Rewound to the pretrained weights, not a random θ0.
        np.testing.assert_array_equal(weights[path], np.where(mask, pretrained_weights[path], 0))


@pytest.mark.slow  # Two searches on two texts, to refuse the second.
def test_resume_on_text_of_another_vocabulary_is_refused_naming_it(tmp_path):
    def search(text):
        splits = kl.text.text_splits(text * 40, sequence_length=8)
        keras.utils.set_random_seed(0)
        model = kl.models.transformer_lm(splits.vocabulary.size, 8, embed_dim=8, num_heads=2,
                                         ff_dim=8, num_blocks=1)
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      jit_compile=False)
        return kl.TicketSearch(model, *splits.train, rounds=1, epochs=1, batch_size=8,
                               vocabulary=splits.vocabulary, directory=tmp_path, verbose=0)

    search("a cab bad dab. ").run()
    assert search("a cab bad dab. ").run().records  # The same text resumes.
    # As many characters, one other: the same model and shapes; the ids mean other letters.
    with pytest.raises(ValueError, match=r"vocabulary differs: 6 characters then, 6 characters "
                                         r"now \(only then: 'a'; only now: 'e'"):
        search("e ceb bed deb. ").run()
    with pytest.raises(ValueError, match="use level='byte'"):
        search("a cab bad dabs. ").run()
    # Reopened for its masks only, without data or vocabulary: no refusal.
    reopened = search("a cab bad dab. ")
    reopened.vocabulary, reopened.x = None, None
    assert reopened.masks(1)
    with pytest.raises(ValueError, match="`vocabulary`"):
        kl.TicketSearch(_tiny("lstm_lm"), vocabulary="abc")
