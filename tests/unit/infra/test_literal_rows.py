"""literal_rows: the VALUES text the batch writer sends to MySQL/MariaDB without bound parameters."""

from __future__ import annotations

import pytest
from asyncmy.converters import escape_item

from tinyim.infra.db import literal_rows

pytestmark = pytest.mark.unit


def escape(value: object) -> str:
    return str(escape_item(value, "utf8"))


def test_integers_are_written_as_digits_and_none_as_null() -> None:
    rows: list[dict[str, int | None]] = [{"a": 1, "b": -20, "c": None}, {"a": 10**18, "b": 0, "c": 7}]
    assert literal_rows(rows, ["a", "b", "c"], escape) == "(1,-20,NULL), (1000000000000000000,0,7)"


def test_other_values_go_through_the_driver_escape_once_per_object() -> None:
    calls: list[object] = []

    def counting(value: object) -> str:
        calls.append(value)
        return escape(value)

    shared = "it's \\ 'quoted'"
    rows = [{"id": n, "text": shared, "flag": True} for n in range(3)]
    text = literal_rows(rows, ["id", "text", "flag"], counting)
    assert text.count(escape(shared)) == 3 and "'it\\'s \\\\ \\'quoted\\''" in text
    assert calls.count(shared) == 1  # one escape for the string all rows share
    assert text.startswith("(0,") and ",1)" in text  # a bool is escaped by the driver, as 1


class Sneaky(int):
    """An int subclass whose repr is not digits: must not be trusted as an integer."""

    def __repr__(self) -> str:
        return "1); DROP TABLE x; --"


def test_only_exact_ints_skip_escaping() -> None:
    seen: list[object] = []

    def spy(value: object) -> str:
        seen.append(value)
        return "'escaped'"

    assert literal_rows([{"a": Sneaky(1)}], ["a"], spy) == "('escaped')"
    assert len(seen) == 1
