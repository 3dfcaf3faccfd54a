"""The tables every module's SQL adapter declares, gathered into one MetaData (for `alembic check`).

The migrations own the schema; the adapters' Table objects mirror it. Loading every module's `adapters.sql`
here (found by walking `tinyim.modules`, so a new module needs no entry) lets alembic compare the two.
"""

from __future__ import annotations

import importlib
import pkgutil

from sqlalchemy import MetaData, String
from sqlalchemy.types import TypeEngine

import tinyim.modules
from tinyim.infra.db import metadata


def all_tables() -> MetaData:
    for module in pkgutil.iter_modules(tinyim.modules.__path__):
        name = f"tinyim.modules.{module.name}.adapters.sql"
        if importlib.util.find_spec(f"tinyim.modules.{module.name}.adapters") is None:
            continue
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)
    return metadata


def compare_type(
    context: object,
    inspected_column: object,
    metadata_column: object,
    inspected_type: TypeEngine[object],
    metadata_type: TypeEngine[object],
) -> bool:
    """alembic's compare_type: True when the database column cannot hold what the adapter's column says.

    The migrations pick dialect types (BIGINT UNSIGNED, TINYINT on MySQL; INTEGER for SQLite's rowid keys;
    TIMESTAMP) that the adapters' mirrors need not repeat: what the code relies on is the kind of value
    (integer, string of a length, text, date-time, binary) and, for strings, the length. So those are
    compared; the integer width and the date-time flavour are not.
    """
    return _kind(inspected_type) != _kind(metadata_type)


def _kind(type_: TypeEngine[object]) -> tuple[str, int | None]:
    affinity = type_._type_affinity or type(type_)
    length = getattr(type_, "length", None) if issubclass(affinity, String) else None
    return affinity.__name__, length


# Keys the migrations create that the timeline adapter's tables do not declare yet (that module is being
# reworked by the performance effort, #12). Skipped by name only, so any other drift still fails the check;
# once the timeline tables declare them, this set goes.
NOT_YET_MIRRORED = frozenset(
    {
        ("im_message_body", "idx_create_time"),
        ("im_message_body", "idx_sender"),
        ("im_message_body", "uk_sender_client_msg"),
        ("im_message_index", "idx_msg"),
        ("im_message_index", "idx_owner_conv"),
        ("im_message_index", "uk_owner_seq"),
    }
)


def include_object(obj: object, name: str | None, kind: str, reflected: bool, compare_to: object) -> bool:
    """alembic's include_object: everything but the NOT_YET_MIRRORED keys found in the database."""
    if kind in ("index", "unique_constraint") and reflected and compare_to is None:
        table = getattr(obj, "table", None)
        return (getattr(table, "name", None), name) not in NOT_YET_MIRRORED
    return True
