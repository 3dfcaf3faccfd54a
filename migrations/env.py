"""Alembic environment: runs migrations on the async engine of IM_DATABASE_URL (or the given URL)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from tinyim.bootstrap.schema import all_tables, compare_type, include_object

config = context.config

# `alembic check` compares the adapters' tables (all_tables) with the migrated database: tables, columns,
# nullability, indexes and unique keys, and column types by kind (compare_type). Server defaults are not
# compared: defaults are the migrations' business (the mirrors do not repeat them) and MySQL and SQLite
# reflect them in different spellings.
COMPARE: dict[str, object] = {
    "compare_type": compare_type,
    "compare_server_default": False,
    "include_object": include_object,
}


def _url() -> str:
    url = config.attributes.get("database_url")
    if url:
        return str(url)
    from tinyim.settings import Settings

    return Settings().effective_database_url


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=all_tables(), render_as_batch=True, **COMPARE)
    with context.begin_transaction():
        context.run_migrations()


async def _online() -> None:
    engine = create_async_engine(_url())
    async with engine.connect() as conn:
        await conn.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_online())
