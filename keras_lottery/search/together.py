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

from keras_lottery.runtime import distribution
from keras_lottery.search.joint import serve_jointly


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
        # Every search's arguments and directory are checked before any trains.
        steps = [search._start(*arguments, together=True) for search in searches]
        return _Rounds(steps, any(search.verbose for search in searches)).run()


class _Rounds:
    """Steps the searches' trainings: each runs on to its next offer (a
    round's trainings that may share a program), and the offers that can
    share one train together, led by the first search waiting."""

    def __init__(self, steps, verbose):
        self.steps, self.verbose = steps, verbose
        self.results = [None] * len(steps)
        self.waiting = {}  # Search index -> its offer, `(joint, round_, members)`.
        self.said = set()

    def run(self) -> list:
        for index in range(len(self.steps)):
            self._advance(index, None)
        while self.waiting:
            group = self._group()
            answers = serve_jointly([self.waiting[index] for index in group])
            for index, answer in zip(group, answers):
                self._advance(index, answer)
        return self.results

    def _advance(self, index, answer):
        try:
            self.waiting[index] = self.steps[index].send(answer)
        except StopIteration as done:
            self.waiting.pop(index, None)
            self.results[index] = done.value

    def _group(self) -> list:
        first, *others = sorted(self.waiting)
        joint, round_, _ = self.waiting[first]
        group = [first]
        for index in others:
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
    from keras_lottery.search.ticket_search import TicketSearch

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
    paths = [str(s.store.directory.path) for s in searches
             if s.store.directory.path != "memory"]
    if len(set(paths)) < len(paths):
        raise ValueError(f"Expected each of `searches` its own directory. Received: {paths}")
    return searches
