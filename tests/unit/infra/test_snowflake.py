from __future__ import annotations

import itertools
import threading

from tinyim.infra.snowflake import EPOCH_MS, Snowflake, id_time_ms


def test_ids_strictly_increase() -> None:
    gen = Snowflake(worker_id=3)
    ids = [gen.next_id() for _ in range(1000)]
    assert all(a < b for a, b in itertools.pairwise(ids))


def test_ids_are_unique_across_threads() -> None:
    gen = Snowflake(worker_id=1)
    out: list[list[int]] = [[] for _ in range(10)]

    def work(i: int) -> None:
        out[i].extend(gen.next_id() for _ in range(5000))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [x for chunk in out for x in chunk]
    assert len(set(flat)) == len(flat) == 50_000


def test_workers_never_collide_at_the_same_instant() -> None:
    now = [EPOCH_MS + 1000]
    a, b = Snowflake(1, lambda: now[0]), Snowflake(2, lambda: now[0])
    assert {a.next_id() for _ in range(100)}.isdisjoint({b.next_id() for _ in range(100)})


def test_clock_going_back_does_not_go_back() -> None:
    now = [EPOCH_MS + 10_000]
    gen = Snowflake(0, lambda: now[0])
    first = gen.next_id()
    now[0] -= 5_000
    assert gen.next_id() > first


def test_sequence_overflow_borrows_the_next_millisecond() -> None:
    now = [EPOCH_MS + 50]
    gen = Snowflake(0, lambda: now[0])
    ids = [gen.next_id() for _ in range(5000)]
    assert len(set(ids)) == 5000 and ids == sorted(ids)
    assert id_time_ms(ids[-1]) == now[0] + 1


def test_id_carries_its_creation_time() -> None:
    gen = Snowflake(5, lambda: EPOCH_MS + 123_456)
    assert id_time_ms(gen.next_id()) == EPOCH_MS + 123_456
