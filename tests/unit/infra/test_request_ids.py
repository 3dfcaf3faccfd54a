"""tracing.new_request: ids that tell requests apart in the logs, within a process and across forks."""

from __future__ import annotations

import multiprocessing
import re

from tinyim.infra import tracing


def _ids(n: int) -> list[str]:
    return [tracing.new_request() for _ in range(n)]


def _child(queue: multiprocessing.Queue[list[str]]) -> None:
    queue.put(_ids(100))


def test_ids_are_16_hex_digits_distinct_and_set_for_the_request() -> None:
    ids = _ids(10_000)
    assert all(re.fullmatch(r"[0-9a-f]{16}", rid) for rid in ids)
    assert len(set(ids)) == len(ids)
    assert tracing.current() == ids[-1]


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[list[str]] = context.Queue()
    child = context.Process(target=_child, args=(queue,))
    child.start()
    theirs = queue.get(timeout=30)
    child.join(timeout=30)
    ours = _ids(100)  # the parent's generator went on from the same state the child started from
    assert not set(theirs) & set(ours)
