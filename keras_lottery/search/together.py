"""Several searches (seeds, say) run round by round, their rounds trained as one program.

A study repeats one search over seeds. With `data_order="shared"` every
seed's round reads the same batches, so the trainings of a round across the
seeds (their tickets and controls, and their dense rounds) are independent
copies of one network fed one stream, just as a round's trainings within
one search are (`joint`). `run_together` steps each search to the next
trainings it can share, trains what the searches offer as one compiled
program (`joint.serve_jointly`), and steps them on. Each search keeps its
own run directory, records, masks and resume; every number is what the
search gives alone. What cannot share a program with the others (another
data order, other settings, data or network) trains on its own, said once.
"""

import contextlib
import pathlib

from keras_lottery.runtime import distribution
from keras_lottery.search.joint import SAVED, serve_jointly
from keras_lottery.search.ticket_search import TicketSearch


def run_together(searches, x=None, y=None, *, validation_data=None, test_data=None,
                 callbacks=None, verbose=None, **fit_kwargs) -> list:
    """Runs (or resumes) several `TicketSearch`es, their rounds trained together.

    Each search trains (or resumes) exactly as its `run()` would, and its
    rounds train beside the other searches' where they can: with
    `data_order="shared"` (one data order for every seed), the same training
    data, `fit` settings, network and compile settings, and what `joint`
    needs (see `TicketSearch`). Searches built with `joint=True` also train
    a round's ticket and controls as one; here they always do where they can.

    Args:
        searches: the `TicketSearch`es, each with its own model and directory.
        x, y, validation_data, test_data, callbacks, verbose, **fit_kwargs:
            as for `TicketSearch.run`, given to every search.

    Returns:
        A `SearchResult` per search, in order.
    """
    searches = _checked(searches)
    arguments = (x, y, validation_data, test_data, callbacks, verbose, fit_kwargs)
    with contextlib.ExitStack() as claims:
        # One process at a time per directory (with several JAX processes, the first).
        if distribution.process_index() == 0:
            for search in searches:
                claims.enter_context(search.store.directory.claimed())
        steps = _started(searches, arguments)
        return _Rounds(steps, any(search.verbose for search in searches)).run()


def _started(searches, arguments) -> list:
    """Every search's trainings (`TicketSearch._start`): each search's
    arguments checked before any directory is opened, each directory's
    settings before the command is told they are accepted. A refusal leaves
    every search's arguments as they were."""
    taken = []
    try:
        for search in searches:
            taken.append((search, search._take(*arguments)))
        steps = [search._start(together=True, accepted=False) for search in searches]
    except ValueError:
        for search, before in taken:
            search._untake(before)
        raise
    for search in searches:
        if search._when_accepted is not None:
            search._when_accepted()
    return steps


class _Rounds:
    """Steps the searches' trainings: each runs on to its next offer (a
    round's trainings that may share a program), and the offers that can
    share one train together, led by the search furthest behind. Every
    search of a program is sent its answer (and saves it) before any goes
    on; a search whose training fails stops there, the others go on, and
    its error is raised once they are done."""

    def __init__(self, steps, verbose):
        self.steps, self.verbose = steps, verbose
        self.results = [None] * len(steps)
        self.waiting = {}  # Search index -> its offer, `(joint, round_, members)`.
        self.errors = []
        self.said = set()

    def run(self) -> list:
        try:
            for index in range(len(self.steps)):
                self._go_on(index, None)
            while self.waiting:
                group = self._group()
                answers = serve_jointly([self.waiting[index] for index in group])
                saved = [index for index, answer in zip(group, answers)
                         if self._go_on(index, answer) is SAVED]
                for index in saved:
                    self._go_on(index, None)
        finally:  # Interrupted: every search's programs go now, not when collected.
            for steps in self.steps:
                steps.close()
        if self.errors:
            raise self.errors[0]
        return self.results

    def _go_on(self, index, answer):
        """Sends search `index` `answer`; returns what it yields next."""
        try:
            offer = self.steps[index].send(answer)
        except StopIteration as done:
            self.waiting.pop(index, None)
            self.results[index] = done.value
            return None
        except Exception as error:  # noqa: BLE001 - raised once the others are done
            self.waiting.pop(index, None)
            self.errors.append(error)
            return None
        if offer is not SAVED:
            self.waiting[index] = offer
        return offer

    def _group(self) -> list:
        # Led by the offer of the earliest round: one ahead waits for the others.
        first = min(self.waiting, key=lambda index: (self.waiting[index][1], index))
        joint, round_, _ = self.waiting[first]
        group = [first]
        for index in sorted(self.waiting):
            if index == first:
                continue
            other, other_round, _ = self.waiting[index]
            why = joint.shares(other, round_, other_round)
            if why is None:
                group.append(index)
            elif why not in self.said:
                self.said.add(why)
                if self.verbose:
                    print(f"[keras-lottery] joint: searches {first} and {index} train apart: "
                          f"{why}.", flush=True)
        return group


def _checked(searches) -> list:
    if isinstance(searches, TicketSearch) or not hasattr(searches, "__iter__"):
        raise ValueError(f"Expected `searches` a list of TicketSearch. Received: {searches!r}")
    searches = list(searches)
    if not searches:
        raise ValueError("Expected `searches` at least one TicketSearch. Received: []")
    others = [type(s).__name__ for s in searches if not isinstance(s, TicketSearch)]
    if others:
        raise ValueError(f"Expected `searches` a list of TicketSearch. Received: {others}")
    if len({id(s) for s in searches}) < len(searches):
        raise ValueError("Expected `searches` distinct searches. Received one search twice.")
    if len({id(s.model) for s in searches}) < len(searches):
        raise ValueError("Expected each of `searches` its own model. Received searches of one "
                         "model object: build one per search.")
    # Resolved: two spellings of one folder are one directory.
    paths = [pathlib.Path(s.store.directory.path).resolve() for s in searches
             if s.store.directory.path != "memory"]
    if len(set(paths)) < len(paths):
        raise ValueError("Expected each of `searches` its own directory. Received: "
                         f"{[str(p) for p in paths]}")
    return searches
