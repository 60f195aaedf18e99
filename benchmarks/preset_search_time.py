"""A whole preset search, timed: what a user waits for, compilation included.

Runs `TicketSearch.from_preset(PRESET)` with the random-reinit control (the
quickstart's search by default: MNIST-1D, generated locally) on the backend
in KERAS_BACKEND, compiled as the presets compile (`--jit-compile fast`) or
with an explicit `jit_compile`, and prints the total time, the first
training's (which pays the compilation) and the median of the others.

    KERAS_BACKEND=torch python benchmarks/preset_search_time.py --rounds 5
    KERAS_BACKEND=torch python benchmarks/preset_search_time.py --rounds 5 --jit-compile false
"""

import argparse
import json
import statistics
import time

JIT = {"fast": None, "true": True, "false": False, "auto": "auto"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="mlp_mnist1d")
    parser.add_argument("--rounds", type=int, default=11, help="pruned rounds after the dense one")
    parser.add_argument("--jit-compile", choices=tuple(JIT), default="fast",
                        help="fast: the presets' own setting; else as model.compile takes it")
    parser.add_argument("--data-dir", help="for presets whose data is not generated locally")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    import keras

    import keras_lottery as kl

    overrides = {} if JIT[args.jit_compile] is None else {"jit_compile": JIT[args.jit_compile]}
    began = time.perf_counter()
    search = kl.TicketSearch.from_preset(args.preset, data_dir=args.data_dir, rounds=args.rounds,
                                         controls=["random_reinit"], verbose=0, **overrides)
    result = search.run()
    total = time.perf_counter() - began
    walls = [r.wall_time for r in result.records]
    report = {"backend": keras.backend.backend(), "preset": args.preset, "rounds": args.rounds,
              "jit_compile": bool(search.model.jit_compile), "total_s": total,
              "trainings_s": walls,
              "last_ticket_test_accuracy": result.tickets()[-1].final["test_accuracy"]}
    print(f"{report['backend']}: jit_compile={report['jit_compile']}, {len(walls)} trainings, "
          f"total {total:.1f} s, first training {walls[0]:.1f} s, later trainings "
          f"{statistics.median(walls[1:] or walls):.2f} s (median)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
