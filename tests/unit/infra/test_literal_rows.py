"""literal_rows: the VALUES text the batch writer sends to MySQL/MariaDB without bound parameters."""

from __future__ import annotations

import pytest
from asyncmy.converters import escape_item

from tinyim.infra.db import literal_rows

pytestmark = pytest.mark.unit


def escape(value: object) -> str:
    return str(escape_item(value, "utf8"))


def test_integer_columns_are_written_as_digits_and_a_missing_text_as_null() -> None:
    rows = [(1, -20, None), (10**18, 0, "x"), (True, False, "")]
    assert literal_rows(rows, 3, [2], escape) == "(1,-20,NULL), (1000000000000000000,0,'x'), (1,0,'')"
    assert literal_rows([(1, 2), (3, 4)], 2, [], escape) == "(1,2), (3,4)"


def test_text_goes_through_the_driver_escape_once_per_object() -> None:
    calls: list[object] = []

    def counting(value: object) -> str:
        calls.append(value)
        return escape(value)

    shared = "it's \\ 'quoted' 100%"
    rows = [(n, shared, 1) for n in range(3)]
    text = literal_rows(rows, 3, [1], counting)
    assert text.count(escape(shared)) == 3 and "'it\\'s \\\\ \\'quoted\\' 100%'" in text
    assert calls.count(shared) == 1  # one escape for the string all rows share
    assert text.startswith("(0,") and text.endswith(",1)")


class Sneaky(int):
    """An int subclass whose repr is not digits: what reaches the SQL must still be digits."""

    def __repr__(self) -> str:
        return "1); DROP TABLE x; --"

    __str__ = __repr__


def test_an_integer_column_only_ever_holds_digits() -> None:
    assert literal_rows([(Sneaky(1), 2)], 2, [], escape) == "(1,2)"
    with pytest.raises(TypeError):  # a string where a number belongs never reaches the SQL
        literal_rows([("1); DROP TABLE x; --", 2)], 2, [], escape)
    with pytest.raises(TypeError):
        literal_rows([("1); DROP TABLE x; --", "ok")], 2, [1], escape)
