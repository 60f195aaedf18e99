"""Tickets in a character-level language model, against random reinit and random pruning.

Yu et al. (ICLR 2020) found winning tickets in LSTM and transformer language
models: iteratively pruned and rewound, they match the dense model's
perplexity to high sparsity, while the same masks on a new initialization do
not. This example runs that comparison on the Jargon File (or tiny
Shakespeare) with the `transformer_lm_<text>` preset (`--network lstm` for
`lstm_lm_<text>`): tickets, and in every round the two controls,

- random reinit: the ticket's masks on a fresh initialization;
- random pruning: random masks with the ticket's density in every layer,
  on θ0.

It writes `table.md` (test bits per character at the early-stop iteration and
at the end, per density), `result.csv` and figures into --out.

The preset prunes 20% a round (output 10%) over 10 rounds to about 11%
density: about 3 hours with JAX on a 2-core CPU. The run in docs/results.md
prunes 36% a round over 5 rounds (the same end point, 10.7%) with windows of
64 characters and 1,400 iterations (2 epochs) a training, in about 50 minutes:

    KERAS_BACKEND=jax python examples/language_model.py --data-dir path/to/data \\
        --rounds 5 --rate 0.36 --sequence-length 64 --iterations 1400
"""

import argparse
import pathlib

import keras_lottery as kl

KINDS = ("ticket", "random_reinit", "random_pruning")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--network", choices=["transformer", "lstm"], default="transformer")
    parser.add_argument("--text", choices=["jargon", "tiny_shakespeare"], default="jargon")
    parser.add_argument("--data-dir", help="folder holding the text (default: tfds or "
                                           "KERAS_LOTTERY_DATA)")
    parser.add_argument("--rounds", type=int, default=None, help="default: the preset's (10)")
    parser.add_argument("--rate", type=float, default=None,
                        help="fraction of every layer's remaining weights pruned per round "
                             "(default: the preset's, 20%% and 10%% for the output)")
    parser.add_argument("--iterations", type=int, default=None,
                        help="per training, rounded up to whole epochs (default: the preset's)")
    parser.add_argument("--sequence-length", type=int, default=None,
                        help="characters per window (default: the preset's, 128)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="run directory; default runs/<preset>")
    args = parser.parse_args()

    preset = f"{args.network}_lm_{args.text}"
    overrides = {name: value for name, value in {
        "rounds": args.rounds, "iterations": args.iterations,
        "sequence_length": args.sequence_length,
        "prune_rates": None if args.rate is None else kl.PruneRates(args.rate),
    }.items() if value is not None}
    out = pathlib.Path(args.out or f"runs/{preset}")
    search = kl.TicketSearch.from_preset(
        preset, data_dir=args.data_dir, seed=args.seed, controls=KINDS[1:], directory=out,
        **overrides)
    result = search.run()
    print(result.summary())
    (out / "result.csv").write_text(result.to_csv())
    table = markdown_table(result)
    (out / "table.md").write_text(table)
    print(table)
    for path in kl.plots.save_figures(result, out / "figures"):
        print("wrote", path)


def markdown_table(result):
    """Test bits per character per density: at the early-stop iteration, then at the end."""
    lines = []
    for title, where in (("at the early-stop iteration (iteration in brackets)", "early_stop"),
                         ("at the end of training", "final")):
        lines += [f"Test bits per character {title}:", "",
                  "| round | density | " + " | ".join(k.replace("_", " ") for k in KINDS) + " |",
                  "|" + " --- |" * (2 + len(KINDS))]
        for ticket in result.tickets():
            cells = []
            for kind in KINDS:
                record = result.record(ticket.round, kind) if ticket.round or kind == "ticket" \
                    else None
                cells.append(_cell(record, where))
            lines.append(f"| {ticket.round} | {ticket.density:.1%} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _cell(record, where):
    if record is None:
        return "-"
    values = getattr(record, where) or record.final
    bpc = values.get("test_bits_per_character")
    if bpc is None:
        return "-"
    if where == "early_stop" and record.early_stop:
        return f"{bpc:.3f} ({record.early_stop['iteration']})"
    return f"{bpc:.3f}"


if __name__ == "__main__":
    main()
