"""What a search prints as it goes: one line per finished training, with the time left."""

import time


class Progress:
    """Prints a line per finished training: round, kind, density, early-stop
    iteration, test (else validation) accuracy or loss, time, and an estimate
    of the time left.

    Args:
        planned: trainings the search plans at most.
        done: trainings already done (resumed) when it starts.
        verbose: prints nothing when 0.
    """

    def __init__(self, planned: int, done: int, verbose: int):
        self.planned, self.done, self.verbose = planned, done, verbose
        self.began, self.trained = time.perf_counter(), 0

    def report(self, record) -> None:
        self.trained += 1
        if not self.verbose:
            return
        name, value = _headline(record)
        left = self.planned - self.done - self.trained
        per_training = (time.perf_counter() - self.began) / self.trained
        stop = record.early_stop_iteration
        print(
            f"[keras-lottery] round {record.round} {record.kind}: density {record.density:.2%}"
            + (f", early stop at iteration {stop}" if stop is not None else "")
            + (f", {name} {value:.4f}" if value is not None else "")
            + f", {record.wall_time:.1f}s"
            + (f"; at most {left} trainings left, about {_duration(left * per_training)}"
               if left > 0 else ""),
            flush=True,
        )


def _headline(record):
    """The test (else validation) accuracy-like metric, else bits per character
    (a language model), else loss, at the early stop."""
    measured = {**record.final, **record.early_stop}
    for prefix in ("test_", "val_"):
        names = sorted(k for k in measured if k.startswith(prefix) and "acc" in k)
        names += [k for k in (f"{prefix}bits_per_character", f"{prefix}loss") if k in measured]
        if names:
            return names[0], measured[names[0]]
    return None, None


def _duration(seconds):
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"
