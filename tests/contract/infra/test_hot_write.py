"""`Database.hot_write` / `hot_read` on MariaDB: the hot connections stay checked out between uses, and a
write is begun and committed without a greenlet when nothing is left to send. These prove that keeping
them loses nothing: what committed is there, what failed is rolled back and its connection is not kept."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.contract.conftest import Backend, fresh_id, make_backend
from tinyim.infra.db import COMMIT, HOT_IDLE_MAX, Database, driver_connection, fetch_rows, run_statements


@pytest.fixture
def mariadb(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    return make_backend("mariadb", request, tmp_path_factory)


async def connection_id(db: Database) -> int:
    async with db.hot_write() as conn:
        return int((await fetch_rows(conn, None, "SELECT CONNECTION_ID()", None))[0][0])


async def stored_seq(db: Database, user_id: int) -> int | None:
    async with db.writer.connect() as conn:
        found = await conn.scalar(text(f"SELECT max_seq FROM im_user_seq WHERE user_id = {user_id}"))
    return None if found is None else int(found)


def bump(user_id: int, to: int) -> str:
    return (
        f"INSERT INTO im_user_seq (user_id, max_seq) VALUES ({user_id}, {to}) "
        f"ON DUPLICATE KEY UPDATE max_seq = {to}"
    )


async def test_one_connection_serves_transaction_after_transaction(mariadb: Backend) -> None:
    async with mariadb.database() as db:
        assert db is not None
        first = await connection_id(db)
        assert [await connection_id(db) for _ in range(5)] == [first] * 5


async def test_commit_in_the_last_round_trip_and_commit_after_it_both_stick(mariadb: Backend) -> None:
    """A batch whose COMMIT rode its statements, and one that left the commit to hot_write."""
    a, b = fresh_id(), fresh_id()
    async with mariadb.database() as db:
        assert db is not None
        async with db.hot_write() as conn:
            await run_statements(conn, [bump(a, 7), COMMIT])
        async with db.hot_write() as conn:
            await run_statements(conn, [bump(b, 9), bump(a, 8)])  # no COMMIT: hot_write commits
        assert (await stored_seq(db, a), await stored_seq(db, b)) == (8, 9)


async def test_a_failed_transaction_is_rolled_back_and_its_connection_not_kept(mariadb: Backend) -> None:
    """Not kept: closed, it went back to the pool (rolled back), as a connection of `write()` would."""
    a = fresh_id()
    async with mariadb.database() as db:
        assert db is not None
        await connection_id(db)
        assert db.hot_connections_kept == 1
        with pytest.raises(RuntimeError, match="the batch failed"):
            async with db.hot_write() as conn:
                await run_statements(conn, [bump(a, 5), "SELECT 1"])
                raise RuntimeError("the batch failed")
        assert db.hot_connections_kept == 0
        assert await stored_seq(db, a) is None
        async with db.hot_write() as conn:  # the next one works as ever
            await run_statements(conn, [bump(a, 6), COMMIT])
        assert await stored_seq(db, a) == 6


async def test_concurrent_transactions_keep_at_most_a_few_connections(mariadb: Backend) -> None:
    async with mariadb.database() as db:
        assert db is not None
        holders = HOT_IDLE_MAX + 2
        all_in, release = asyncio.Event(), asyncio.Event()
        seen: set[int] = set()

        async def hold() -> None:
            async with db.hot_write() as conn:
                seen.add(int((await fetch_rows(conn, None, "SELECT CONNECTION_ID()", None))[0][0]))
                if len(seen) == holders:
                    all_in.set()
                await release.wait()

        tasks = [asyncio.create_task(hold()) for _ in range(holders)]
        await asyncio.wait_for(all_in.wait(), 10)
        release.set()
        await asyncio.gather(*tasks)
        assert db.hot_connections_kept == HOT_IDLE_MAX
        assert await connection_id(db) in seen
        await db.dispose()
        assert db.hot_connections_kept == 0


async def test_hot_reads_keep_their_connection_and_drop_one_that_failed(mariadb: Backend) -> None:
    async def my_id(conn: AsyncConnection) -> int:
        return int((await fetch_rows(conn, None, "SELECT CONNECTION_ID()", None))[0][0])

    async def broken(conn: AsyncConnection) -> int:
        await fetch_rows(conn, None, "SELECT no_such_column FROM im_user_seq", None)
        raise AssertionError("the read above fails")

    async with mariadb.database() as db:
        assert db is not None
        first = await db.hot_read(my_id)
        assert [await db.hot_read(my_id) for _ in range(3)] == [first] * 3
        assert db.hot_connections_kept == 1
        with pytest.raises(DBAPIError, match="no_such_column"):
            await db.hot_read(broken)
        assert db.hot_connections_kept == 0
        await db.hot_read(my_id)  # reads go on, on a connection from the pool
        assert db.hot_connections_kept == 1


async def test_a_connection_in_use_when_the_database_is_disposed_is_closed_not_kept(mariadb: Backend) -> None:
    a = fresh_id()
    async with mariadb.database() as db:
        assert db is not None
        async with db.hot_write() as conn:
            await db.dispose()  # shutdown while a batch is in the database
            await run_statements(conn, [bump(a, 3), COMMIT])
        assert db.hot_connections_kept == 0
        assert await stored_seq(db, a) == 3


async def test_a_failed_transaction_whose_rollback_fails_is_never_committed_by_the_next(
    mariadb: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hot pool does not reset what comes back: a connection whose rollback failed would carry its
    open transaction to the next user, whose COMMIT would commit it. It is thrown away instead (the
    server rolls back what a closed connection left open)."""
    a, b = fresh_id(), fresh_id()
    async with mariadb.database() as db:
        assert db is not None
        failed_id = await connection_id(db)
        with pytest.raises(RuntimeError, match="the batch failed"):
            async with db.hot_write() as conn:
                await run_statements(conn, [bump(a, 5), "SELECT 1"])
                driver = await driver_connection(conn)

                async def refuse() -> None:
                    raise ConnectionError("the rollback did not get through")

                monkeypatch.setattr(driver, "rollback", refuse)
                raise RuntimeError("the batch failed")
        monkeypatch.undo()
        async with db.hot_write() as conn:
            await run_statements(conn, [bump(b, 1), COMMIT])
            assert int((await fetch_rows(conn, None, "SELECT CONNECTION_ID()", None))[0][0]) != failed_id
        await asyncio.sleep(0.2)  # the server ends the closed connection's session
        assert (await stored_seq(db, a), await stored_seq(db, b)) == (None, 1)


async def test_a_transaction_interrupted_mid_statement_is_thrown_away_not_kept(mariadb: Backend) -> None:
    """A write cut off while the database is still working on it: the connection's state is unknown, so
    it is not rolled back and reused but closed, and what it wrote never commits."""
    a = fresh_id()
    async with mariadb.database() as db:
        assert db is not None
        first = await connection_id(db)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3), db.hot_write() as conn:
                await run_statements(conn, [bump(a, 5), "SELECT 1"])
                await fetch_rows(conn, None, "SELECT SLEEP(2)", None)
        assert db.hot_connections_kept == 0
        assert await connection_id(db) != first
        assert await stored_seq(db, a) is None
