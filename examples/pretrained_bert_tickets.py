"""Tickets of a pretrained BERT, rewound to the pretrained weights, against random pruning.

Chen et al. (NeurIPS 2020, "The Lottery Ticket Hypothesis for Pre-trained
BERT Networks") prune a pretrained BERT by iterative magnitude pruning while
fine-tuning on a downstream task, rewinding every round to the *pretrained*
weights rather than to a random initialization, and find matching
subnetworks at 40-90% sparsity, where random pruning of the same sparsity
falls behind. This example runs that experiment offline, at a size a laptop
CPU trains in minutes, on the Jargon File:

1. **Pretraining.** A small BERT (KerasHub's `BertBackbone`: 2 layers, width
   64, 2 heads, feed-forward 128, a word-piece vocabulary of the text's 2,000
   most frequent words plus its characters) learns masked-language modelling
   (`BertMaskedLM`, 15% of tokens masked, four maskings of each sentence
   drawn once, three epochs) on the text's sentences, and is saved as a
   local KerasHub preset folder: the way users load pretrained weights
   offline (`from_preset(folder)`).
2. **The downstream task, "word order".** Sentences of 6-30 words from the
   same text (8,325 in all), half as written and half with their words in
   a random order (a permutation that moves at least half of them); the
   task is to tell which. The two classes hold the same words, so only
   order tells them apart: the syntax the masked-LM objective learns.
   5,000 sentences train, 800 validate and 800 test; pretraining saw the
   training sentences (without the task's labels), never the other two.
   (Two words swapped, a harder variant tried first, stayed at chance for
   this small model, pretrained or not.)
3. **The search.** `BertTextClassifier.from_preset(folder)` masked in place,
   then `TicketSearch(initial_weights="current")`: each round fine-tunes the
   ticket from the pretrained weights, prunes 20% of the remaining
   transformer weights by global magnitude (the embeddings and the
   classifier head stay dense, as in Chen et al.), and rewinds. The control,
   `random_pruning`, trains random masks of each layer's ticket density from
   the same pretrained weights. A dense classifier of the same shape from a
   random initialization gives the no-pretraining reference.

It writes `table.md` (test accuracy per density, at the best validation
point), `result.csv` and the run directory into --out. About 20 minutes
with JAX on a 2-core CPU for the defaults (10 rounds, to 10.7% density):

    KERAS_BACKEND=jax python examples/pretrained_bert_tickets.py \\
        --data-dir path/to/data --out runs/pretrained_bert

`--smoke` runs every step at a tiny size in a minute (for tests).
"""

import argparse
import collections
import json
import pathlib
import re

import keras
import numpy as np

import keras_lottery as kl
from keras_lottery.data.text import read_text

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
MASKINGS = 4  # Copies of the pretraining sentences, each with its own masked tokens.


def sentences(text, min_words=6, max_words=30):
    """The text's prose sentences of `min_words` to `max_words` words, lower case."""
    found = []
    for paragraph in re.split(r"\n\s*\n", text):
        flat = " ".join(paragraph.split())
        if any(mark in flat for mark in ("│", "──", "====", "http")):
            continue  # Tables, rules, addresses: not prose.
        for sentence in re.split(r"(?<=[.!?])\s+", flat):
            words = re.findall(r"[a-z]+(?:'[a-z]+)?|[0-9]+|[^\sa-z0-9]", sentence.lower())
            if min_words <= sum(w.isalpha() for w in words) <= max_words:
                found.append(" ".join(words))
    return list(dict.fromkeys(found))  # Each sentence once, in text order.


def word_piece_vocabulary(texts, size):
    """SPECIAL, the `size` most frequent words, and every character alone
    and as a continuation piece (`##c`), so that any word tokenizes."""
    counts = collections.Counter(word for text in texts for word in text.split())
    characters = sorted({c for text in texts for c in text if not c.isspace()})
    words = [w for w, _ in counts.most_common() if w not in characters][:size]
    return SPECIAL + characters + [f"##{c}" for c in characters] + words


def word_order_task(texts, seed):
    """`(texts, labels)`: label 1 for a sentence as written, 0 for the same
    sentence with its words in a random order (a random half of them)."""
    rng = np.random.default_rng(seed)
    out, labels = [], []
    for text in texts:
        words = text.split()
        label = 1
        if rng.random() < 0.5:
            for _ in range(20):
                order = rng.permutation(len(words))
                if np.sum(order != np.arange(len(words))) * 2 >= len(words):
                    words, label = [words[i] for i in order], 0
                    break
        out.append(" ".join(words))
        labels.append(label)
    return out, np.array(labels, "int32")


def pretrain(keras_hub, texts, vocabulary, args, folder):
    """Masked-LM pretraining of a small BERT; saved as a KerasHub preset in `folder`.

    The tokens to predict are drawn once, before training, for `MASKINGS`
    copies of the sentences (static masking, as the original BERT did):
    KerasHub's preprocessor draws them again in a parallel `tf.data` map at
    every epoch otherwise, which no seed makes repeatable.
    """
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True)
    preprocessor = keras_hub.models.BertMaskedLMPreprocessor(
        tokenizer, sequence_length=args.sequence_length, mask_selection_rate=0.15,
        mask_selection_length=max(4, args.sequence_length // 6))
    keras.utils.set_random_seed(args.seed)
    x, y, weights = preprocessor(np.array(texts * MASKINGS))
    size = len(texts) * MASKINGS
    data = _batches((x, y, weights), 64, size, args.seed, args.pretrain_epochs)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocabulary), num_layers=args.layers, num_heads=args.heads,
        hidden_dim=args.width, intermediate_dim=2 * args.width,
        max_sequence_length=args.sequence_length)
    masked_lm = keras_hub.models.BertMaskedLM(backbone, preprocessor=None)
    masked_lm.compile(optimizer=keras.optimizers.AdamW(args.pretrain_lr, weight_decay=0.01),
                      weighted_metrics=["sparse_categorical_accuracy"])
    history = masked_lm.fit(data, epochs=args.pretrain_epochs, steps_per_epoch=size // 64,
                            verbose=2 if args.verbose else 0)
    folder.mkdir(parents=True, exist_ok=True)
    backbone.save_to_preset(folder)
    tokenizer.save_to_preset(folder)
    return {k: float(v[-1]) for k, v in history.history.items()}


def _batches(data, batch_size, size, seed, epochs):
    """`data` in shuffled batches for `epochs` epochs of `size // batch_size` steps.

    A KerasHub task's `fit` makes arrays into an unshuffled `tf.data` pipeline,
    so the order is drawn here: a new permutation per epoch, under `seed`, laid
    out in advance. Every `fit` given this dataset reads it from its start, so
    each training sees the same batches however many trained before it in the
    process: a search resumed after a kill trains as the uninterrupted one did.
    (A `shuffle(..., reshuffle_each_iteration=True)` would carry its state from
    one training to the next.) Pass `steps_per_epoch=size // batch_size`.
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(size) for _ in range(epochs)])
    arrays = keras.tree.map_structure(keras.ops.convert_to_numpy, data)
    return tf.data.Dataset.from_tensor_slices(order).batch(
        batch_size, drop_remainder=True).map(
        lambda rows: tf.nest.map_structure(lambda a: tf.gather(a, rows), arrays))


def classifier_data(preprocessor, texts, labels):
    x = preprocessor(np.array(texts))
    return {k: keras.ops.convert_to_numpy(v) for k, v in x.items()}, labels


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", help="folder holding text/jargon.txt.gz "
                                           "(default: KERAS_LOTTERY_DATA)")
    parser.add_argument("--out", default="runs/pretrained_bert")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--rate", type=float, default=0.2,
                        help="fraction of the remaining transformer weights pruned a round")
    parser.add_argument("--epochs", type=int, default=4, help="fine-tuning epochs a training")
    parser.add_argument("--pretrain-epochs", type=int, default=3,
                        help=f"epochs over the {MASKINGS} masked copies of the sentences")
    parser.add_argument("--pretrain-lr", type=float, default=2e-3)
    parser.add_argument("--lr", type=float, default=3e-4, help="fine-tuning learning rate")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--vocabulary", type=int, default=2000)
    parser.add_argument("--sequence-length", type=int, default=48)
    parser.add_argument("--train", type=int, default=5000, help="task sentences to train on")
    parser.add_argument("--held-out", type=int, default=800,
                        help="task sentences to validate on, and as many to test on")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="a tiny run of every step")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.epochs, args.pretrain_epochs, args.train, args.held_out = 1, 1, 1, 200, 50
        args.width, args.vocabulary, args.layers = 16, 200, 1
    try:
        import keras_hub
    except ImportError:
        raise SystemExit("This example needs KerasHub: pip install keras-lottery[hub]") from None

    keras.utils.set_random_seed(args.seed)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    texts = sentences(read_text(_jargon_path(args.data_dir)))
    order = np.random.default_rng(args.seed).permutation(len(texts))
    held_out = 2 * args.held_out
    task_ids = order[:args.train + held_out]
    pretrain_ids = np.concatenate([order[:args.train], order[args.train + held_out:]])
    vocabulary = word_piece_vocabulary([texts[i] for i in pretrain_ids], args.vocabulary)

    # 1. Pretraining, never on the task's validation and test sentences; once per --out.
    preset = out / "pretrained"
    if not (preset / "config.json").exists():
        logs = pretrain(keras_hub, [texts[i] for i in pretrain_ids], vocabulary, args, preset)
        (out / "pretraining.json").write_text(json.dumps(logs, indent=2))
    pretraining = json.loads((out / "pretraining.json").read_text())

    # 2. The task: the same sentences for every model.
    task_texts, labels = word_order_task([texts[i] for i in task_ids], args.seed)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor.from_preset(
        str(preset), sequence_length=args.sequence_length)
    x, y = classifier_data(preprocessor, task_texts, labels)
    train, val, test = (slice(0, args.train), slice(args.train, args.train + args.held_out),
                        slice(args.train + args.held_out, None))

    def split(part):
        return {k: v[part] for k, v in x.items()}, y[part]

    def shuffled(part):
        return _batches(split(part), 32, args.train, args.seed, args.epochs)

    def compiled(model):
        settings = kl.fast_compile_settings()
        if args.smoke:
            settings["jit_compile"] = False  # Compiling costs more than a smoke run trains.
        model.compile(optimizer=keras.optimizers.AdamW(args.lr, weight_decay=0.01),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"], **settings)
        return model

    # 3. The search, from the pretrained weights loaded from the folder.
    classifier = compiled(keras_hub.models.BertTextClassifier.from_preset(
        str(preset), num_classes=2, preprocessor=None))
    kl.prunable(classifier, in_place=True)
    rates = kl.PruneRates(args.rate, by_kind={"embedding": 0.0, "output": 0.0})
    search = kl.TicketSearch(
        classifier, initial_weights="current", rounds=args.rounds, prune_rates=rates,
        budget="global", controls=["random_pruning"], validation_data=split(val),
        test_data=split(test), directory=out / "search", seed=args.seed,
        verbose=1 if args.verbose else 0, epochs=args.epochs,
        steps_per_epoch=args.train // 32)
    result = search.run(shuffled(train))
    (out / "result.csv").write_text(result.to_csv())

    # The no-pretraining reference: the same classifier from a random initialization.
    scratch_file = out / "from_scratch.json"
    if not scratch_file.exists():
        config = classifier.backbone.get_config()
        scratch = compiled(keras_hub.models.BertTextClassifier(
            keras_hub.models.BertBackbone.from_config(config), num_classes=2,
            preprocessor=None))
        scratch.fit(shuffled(train), validation_data=split(val), verbose=0, epochs=args.epochs,
                    steps_per_epoch=args.train // 32,
                    callbacks=[keras.callbacks.EarlyStopping(restore_best_weights=True,
                                                             patience=args.epochs)])
        scratch_file.write_text(json.dumps(
            dict(zip(["loss", "accuracy"], scratch.evaluate(*split(test), verbose=0)))))
    scratch = json.loads(scratch_file.read_text())

    # The transformer weights: those the rates prune (the embeddings and head stay dense).
    sizes = {path: mask.size for path, mask in search.initial_masks.items()
             if search.rates[path] > 0}
    table = markdown_table(result, pretraining, scratch, sizes)
    (out / "table.md").write_text(table)
    print(table)


def _jargon_path(data_dir):
    import os

    folder = pathlib.Path(data_dir or os.environ.get("KERAS_LOTTERY_DATA", "."))
    return folder / "text" / "jargon.txt.gz"


def markdown_table(result, pretraining, scratch, sizes):
    """Test accuracy per density at the best validation loss, ticket and random pruning."""
    lines = [
        f"Pretraining: masked-LM accuracy {pretraining.get('sparse_categorical_accuracy', 0):.1%} "
        "on the masked tokens (last epoch).",
        f"No pretraining (dense, random init): test accuracy {scratch['accuracy']:.1%}.",
        "",
        "| round | transformer density | ticket (pretrained rewind) | random pruning |",
        "| --- | --- | --- | --- |",
    ]
    for ticket in result.tickets():
        control = result.record(ticket.round, "random_pruning") if ticket.round else None
        lines.append(f"| {ticket.round} | {_density(ticket, sizes):.1%} | {_accuracy(ticket)} | "
                     f"{_accuracy(control)} |")
    return "\n".join(lines) + "\n"


def _density(record, sizes):
    """The density of the weights the search prunes, `{path: size}`."""
    kept = sum(record.layer_densities[path] * size for path, size in sizes.items())
    return kept / sum(sizes.values())


def _accuracy(record):
    if record is None:
        return "-"
    values = record.early_stop or record.final
    accuracy = values.get("test_accuracy")
    return "-" if accuracy is None else f"{accuracy:.1%}"


if __name__ == "__main__":
    main()
