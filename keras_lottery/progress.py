"""What a search prints as it goes: one line per finished training, with the time left."""

import time


class Progress:
    """Prints a line per finished training: round, kind, density, early-stop
    iteration, accuracy, time, and an estimate of the time left.

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
        accuracy = record.early_stop.get("test_accuracy", record.final.get("test_accuracy"))
        if accuracy is None:
            accuracy = record.early_stop.get("val_accuracy", record.final.get("val_accuracy"))
        left = self.planned - self.done - self.trained
        per_training = (time.perf_counter() - self.began) / self.trained
        stop = record.early_stop_iteration
        print(
            f"[keras-lottery] round {record.round} {record.kind}: density {record.density:.2%}"
            + (f", early stop at iteration {stop}" if stop is not None else "")
            + (f", accuracy {accuracy:.4f}" if accuracy is not None else "")
            + f", {record.wall_time:.1f}s"
            + (f"; at most {left} trainings left, about {_duration(left * per_training)}"
               if left > 0 else ""),
            flush=True,
        )


def _duration(seconds):
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"
