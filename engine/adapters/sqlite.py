"""The embedded record store: SQLite (standard library), durable, shared by every process.

Why SQLite: the engine must run with no servers installed, and an acknowledged write must be on
disk (DESIGN invariant 10). Each table holds ``(id TEXT PRIMARY KEY, doc TEXT)`` with the record
as JSON; every declared index (``engine.adapters.tables.TableSpec``) is an expression index on
``json_extract(doc, '$.field')`` (plus ``id`` for keyset ties), so the list queries walk an index
in order and stop after a page.

Durability: WAL journal with ``synchronous=FULL``: a commit returns after the WAL is fsynced, and
a write's awaitable resolves only after its commit. SIGKILL of every process loses nothing that
was acknowledged.

Never on the event loop: one writer thread per process owns the write connection and groups the
writes that are waiting into one transaction (one fsync for the group), each in its own
SAVEPOINT so one failing write (a duplicate key) fails alone. Reads run on a small pool of
reader threads with their own connections; WAL lets them read beside the writer and beside
other processes' writers. Every process (gateway, conversation hosts, delivery actors, indexer)
opens the same file; SQLite's locks serialise the writers (``busy_timeout``), and a
read-modify-write runs inside the writer's ``BEGIN IMMEDIATE`` transaction, so it is atomic
across processes too.

Bounded: writes per group (``max_batch``), writes in flight per event loop (``max_pending``),
rows per read (``MAX_PAGE``), the page cache per connection (``cache_kib``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sqlite3
import threading
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, Unpack

import orjson

from engine.adapters.tables import (
    MAX_PAGE,
    Change,
    Has,
    Match,
    Order,
    PageFrom,
    Range,
    TableSpec,
    Text,
    Where,
    apply_changes,
    check_field,
    check_storable,
    matches,
)
from engine.services.ports import Document, DuplicateKey

log = logging.getLogger(__name__)

__all__ = ["SqliteTables"]

T = TypeVar("T")
_IN_CHUNK = 500  # ids per "IN (...)" (SQLite allows 32,766 parameters)


def _x(field: str) -> str:
    """The SQL expression of a field: the same text in every index and every query, which is
    what lets SQLite use an expression index."""
    if field == "_id":
        return "id"
    return f"json_extract(doc, '$.{check_field(field)}')"


def _icontains(haystack: Any, needle: str) -> int:
    return int(isinstance(haystack, str) and needle in haystack.casefold())


def _dumps(doc: Document) -> str:
    check_storable(doc)
    return orjson.dumps(doc).decode()


def _loads(text: str) -> Document:
    doc: Document = orjson.loads(text)
    return doc


def _translate(exc: BaseException) -> BaseException:
    if isinstance(exc, sqlite3.IntegrityError) and "UNIQUE constraint failed" in str(exc):
        return DuplicateKey(str(exc))
    return exc


@dataclass(slots=True)
class _Write:
    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # the caller was cancelled; the write itself has happened
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _make_private(path: Path) -> None:
    """The record file holds every merchant's customers and orders: only this user may read it.
    SQLite creates the ``-wal`` and ``-shm`` files with the main file's mode, so creating that
    one 0600 (and tightening files an older run made with the umask's bits) covers all three."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{path}{suffix}", 0o600)


class SqliteTables:
    """``engine.adapters.tables.Tables`` on one SQLite file. Construction does no I/O: the file,
    the schema and the threads come with the first call."""

    def __init__(
        self,
        path: Path,
        schema: Sequence[TableSpec],
        *,
        readers: int = 2,
        busy_timeout_s: float = 10.0,
        max_batch: int = 64,
        max_pending: int = 4096,
        cache_kib: int = 8192,
    ) -> None:
        self._path = Path(path)
        self._specs = {t.name: t for t in schema}
        self._readers = max(1, readers)
        self._busy_s = busy_timeout_s
        self._max_batch = max(1, max_batch)
        self._max_pending = max(1, max_pending)
        self._cache_kib = cache_kib
        self._lock = threading.Lock()
        self._schema_lock = threading.Lock()
        self._schema_done = False
        self._queue: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        self._closed = False
        self.commits = 0  # transactions committed (each one fsync): what grouping saves

    @property
    def path(self) -> Path:
        return self._path

    # -- connections and schema (worker threads only) ---------------------------------------
    def _connect(self, *, reader: bool) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path,
            timeout=self._busy_s,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            check_same_thread=False,  # used by one thread; closed by close() from another
            cached_statements=256,
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_s * 1000)}")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute(f"PRAGMA cache_size = -{int(self._cache_kib)}")
        if reader:
            conn.execute("PRAGMA query_only = ON")
        conn.create_function("kaleem_icontains", 2, _icontains, deterministic=True)
        return conn

    def _ensure_schema_sync(self) -> None:
        """Once per process, by whichever thread needs the database first; every process runs
        it (IF NOT EXISTS, inside one write transaction), so it is safe to race."""
        if self._schema_done:
            return
        with self._schema_lock:
            if self._schema_done:
                return
            self._path.parent.mkdir(parents=True, exist_ok=True)
            _make_private(self._path)
            conn = self._connect(reader=False)
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise RuntimeError(f"SQLite refused WAL mode on {self._path} ({mode})")
                conn.execute("PRAGMA journal_size_limit = 67108864")
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in self._schema_sql():
                        conn.execute(statement)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            finally:
                conn.close()
            self._schema_done = True

    def _schema_sql(self) -> list[str]:
        out: list[str] = []
        for spec in self._specs.values():
            t = spec.name
            shape = "id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL"
            out.append(f'CREATE TABLE IF NOT EXISTS "{t}" ({shape})')
            for index in spec.indexes:
                if any(f in spec.arrays for f in index.fields):
                    continue  # an array has no single value to index (matched by json_each)
                columns = [_x(f) for f in index.fields]
                if not index.unique and "_id" not in index.fields:
                    columns.append("id")
                unique = "UNIQUE " if index.unique else ""
                out.append(
                    f'CREATE {unique}INDEX IF NOT EXISTS "{t}__{index.name}" '
                    f'ON "{t}" ({", ".join(columns)})'
                )
        return out

    def _table(self, name: str) -> str:
        if name not in self._specs:
            raise ValueError(f"undeclared table {name!r}")
        return name

    # -- the writer thread ------------------------------------------------------------------
    def _start(self) -> None:
        if self._writer is not None and self._pool is not None and not self._closed:
            return
        with self._lock:
            if self._closed:
                raise RuntimeError("the record store is closed")
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_loop, name=f"sqlite-writer:{self._path.name}", daemon=True
                )
                self._writer.start()
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self._readers, thread_name_prefix=f"sqlite-read:{self._path.name}"
                )

    def _write_loop(self) -> None:
        conn: sqlite3.Connection | None = None
        stop = False
        while not stop:
            item = self._queue.get()
            if item is None:
                break
            batch = [item]
            while len(batch) < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            try:
                if conn is None:
                    self._ensure_schema_sync()
                    conn = self._connect(reader=False)
                results = self._commit(conn, batch)
                self.commits += 1
            except BaseException as exc:  # the group failed as a whole: nothing was committed
                log.warning("record store write group failed: %s", type(exc).__name__)
                results = [(False, _translate(exc))] * len(batch)
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
                    conn = None  # reopen: the failure may have broken the connection
            for write, (ok, value) in zip(batch, results, strict=True):
                with contextlib.suppress(RuntimeError):  # that event loop is closed
                    write.loop.call_soon_threadsafe(_settle, write.future, ok, value)
        if conn is not None:
            conn.close()

    @staticmethod
    def _commit(conn: sqlite3.Connection, batch: list[_Write]) -> list[tuple[bool, Any]]:
        """One transaction, one fsync, for every write waiting; each write in a SAVEPOINT."""
        conn.execute("BEGIN IMMEDIATE")
        results: list[tuple[bool, Any]] = []
        try:
            for write in batch:
                conn.execute("SAVEPOINT w")
                try:
                    value = write.fn(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO w")
                    conn.execute("RELEASE w")
                    results.append((False, _translate(exc)))
                else:
                    conn.execute("RELEASE w")
                    results.append((True, value))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(Exception):
                    conn.execute("ROLLBACK")
            raise
        return results

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        self._start()
        loop = asyncio.get_running_loop()
        slots = self._slots.get(loop)
        if slots is None:
            slots = self._slots[loop] = asyncio.Semaphore(self._max_pending)
        async with slots:
            future: asyncio.Future[T] = loop.create_future()
            with self._lock:  # nothing may queue behind close()'s stop marker
                if self._closed:
                    raise RuntimeError("the record store is closed")
                self._queue.put(_Write(fn, future, loop))
            return await future

    # -- the reader threads -----------------------------------------------------------------
    def _run_read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            self._ensure_schema_sync()
            conn = self._connect(reader=True)
            self._local.conn = conn
            with self._lock:
                self._reader_conns.append(conn)
        return fn(conn)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        self._start()
        assert self._pool is not None
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._run_read, fn)

    # -- query building ---------------------------------------------------------------------
    def _conditions(self, where: Where, text: Text | None = None) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        for name, cond in where.items():
            x = _x(name)
            if isinstance(cond, Range):
                for op, bound in (
                    ("<", cond.lt),
                    ("<=", cond.lte),
                    (">", cond.gt),
                    (">=", cond.gte),
                ):
                    if bound is not None:
                        clauses.append(f"{x} {op} ?")
                        args.append(bound)
            elif isinstance(cond, Has):
                path = f"'$.{check_field(name)}'"
                clauses.append(f"EXISTS (SELECT 1 FROM json_each(doc, {path}) WHERE value = ?)")
                args.append(cond.value)
            elif cond is None:
                clauses.append(f"{x} IS NULL")
            else:
                clauses.append(f"{x} = ?")
                args.append(cond)
        if text is not None and text.fields:
            clauses.append(
                "(" + " OR ".join(f"kaleem_icontains({_x(f)}, ?)" for f in text.fields) + ")"
            )
            args += [text.needle.casefold()] * len(text.fields)
        return clauses, args

    @staticmethod
    def _keyset(order: Order, after: tuple[Any, str]) -> tuple[str, list[Any]]:
        value, last = after
        desc = order.descending
        lt = "<" if desc else ">"
        if order.field == "_id":
            return f"id {lt} ?", [last]
        x = _x(order.field)
        if value is None:  # nulls sort lowest
            if desc:
                return f"({x} IS NULL AND id < ?)", [last]
            return f"({x} IS NOT NULL OR id > ?)", [last]
        le = "<=" if desc else ">="
        # The first term is a plain range, so the index walk starts at the cursor.
        return f"{x} {le} ? AND ({x} {lt} ? OR id {lt} ?)", [value, value, last]

    @staticmethod
    def _order_by(order: Order) -> str:
        direction = "DESC" if order.descending else "ASC"
        if order.field == "_id":
            return f"ORDER BY id {direction}"
        then = f"{_x(order.then)} {direction}, " if order.then else ""
        return f"ORDER BY {_x(order.field)} {direction}, {then}id {direction}"

    @staticmethod
    def _match_sql(match: Match | None) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        for name, value in (match or {}).items():
            if value is None:
                clauses.append(f"{_x(name)} IS NULL")
            else:
                clauses.append(f"{_x(name)} = ?")
                args.append(value)
        return "".join(f" AND {c}" for c in clauses), args

    # -- reads ------------------------------------------------------------------------------
    async def get(self, table: str, id: str, match: Match | None = None) -> Document | None:
        sql = f'SELECT doc FROM "{self._table(table)}" WHERE id = ?'

        def read(conn: sqlite3.Connection) -> Document | None:
            row = conn.execute(sql, (id,)).fetchone()
            if row is None:
                return None
            doc = _loads(row[0])
            return doc if matches(doc, match) else None

        return await self._read(read)

    async def first(self, table: str, where: Where) -> Document | None:
        clauses, args = self._conditions(where)
        sql = f'SELECT doc FROM "{self._table(table)}"' + _where_sql(clauses) + " LIMIT 1"

        def read(conn: sqlite3.Connection) -> Document | None:
            row = conn.execute(sql, args).fetchone()
            return None if row is None else _loads(row[0])

        return await self._read(read)

    def _page_sql(
        self,
        table: str,
        where: Where,
        order: Order,
        after: tuple[Any, str] | None,
        text: Text | None,
    ) -> tuple[str, list[Any]]:
        clauses, args = self._conditions(where, text)
        if after is not None:
            if order.then is not None:
                raise ValueError("an order with a second field takes no keyset")
            clause, more = self._keyset(order, after)
            clauses.append(clause)
            args += more
        sql = (
            f'SELECT doc FROM "{self._table(table)}"'
            + _where_sql(clauses)
            + f" {self._order_by(order)} LIMIT ?"
        )
        return sql, args

    async def page(
        self, table: str, where: Where, *, order: Order, limit: int, **kw: Unpack[PageFrom]
    ) -> list[Document]:
        after, text = kw.get("after"), kw.get("text")
        sql, args = self._page_sql(table, where, order, after, text)
        args.append(_bounded(limit))

        def read(conn: sqlite3.Connection) -> list[Document]:
            return [_loads(row[0]) for row in conn.execute(sql, args)]

        return await self._read(read)

    async def plan(
        self,
        table: str,
        where: Where,
        *,
        order: Order,
        after: tuple[Any, str] | None = None,
        text: Text | None = None,
    ) -> list[str]:
        """SQLite's plan for :meth:`page` (``EXPLAIN QUERY PLAN`` lines): which index a list
        query walks, and whether it sorts (it should not)."""
        sql, args = self._page_sql(table, where, order, after, text)
        args.append(1)

        def read(conn: sqlite3.Connection) -> list[str]:
            return [str(row[3]) for row in conn.execute("EXPLAIN QUERY PLAN " + sql, args)]

        return await self._read(read)

    async def count(self, table: str, where: Where) -> int:
        clauses, args = self._conditions(where)
        sql = f'SELECT count(*) FROM "{self._table(table)}"' + _where_sql(clauses)

        def read(conn: sqlite3.Connection) -> int:
            return int(conn.execute(sql, args).fetchone()[0])

        return await self._read(read)

    async def count_by(
        self, table: str, field: str, where: Where, *, limit: int
    ) -> list[tuple[Any, int]]:
        clauses, args = self._conditions(where)
        sql = (
            f'SELECT {_x(field)} AS v, count(*) AS n FROM "{self._table(table)}"'
            + _where_sql(clauses)
            + " GROUP BY v ORDER BY n DESC, v LIMIT ?"
        )
        args.append(_bounded(limit))

        def read(conn: sqlite3.Connection) -> list[tuple[Any, int]]:
            return [(row[0], int(row[1])) for row in conn.execute(sql, args)]

        return await self._read(read)

    # -- writes -----------------------------------------------------------------------------
    async def insert(self, table: str, doc: Document) -> None:
        sql = f'INSERT INTO "{self._table(table)}" (id, doc) VALUES (?, ?)'
        record_id, text = _record_id(doc), _dumps(doc)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(sql, (record_id, text))

        await self._write(write)

    async def put(self, table: str, doc: Document, match: Match | None = None) -> None:
        t = self._table(table)
        record_id, text = _record_id(doc), _dumps(doc)

        def write(conn: sqlite3.Connection) -> None:
            row = conn.execute(f'SELECT doc FROM "{t}" WHERE id = ?', (record_id,)).fetchone()
            if row is None:
                conn.execute(f'INSERT INTO "{t}" (id, doc) VALUES (?, ?)', (record_id, text))
                return
            if not matches(_loads(row[0]), match):
                raise DuplicateKey(f"{t}: id {record_id!r} is taken")
            conn.execute(f'UPDATE "{t}" SET doc = ? WHERE id = ?', (text, record_id))

        await self._write(write)

    async def patch(
        self, table: str, id: str, *, match: Match | None = None, **change: Unpack[Change]
    ) -> Document | None:
        t = self._table(table)

        def write(conn: sqlite3.Connection) -> Document | None:
            return _patch_one(conn, t, id, match, change)

        return await self._write(write)

    async def patch_many(
        self, table: str, changes: Sequence[tuple[str, Document]], *, match: Match | None = None
    ) -> int:
        t = self._table(table)
        items = list(changes)
        if not items:
            return 0

        def write(conn: sqlite3.Connection) -> int:
            existing: dict[str, Document] = {}
            ids = [record_id for record_id, _ in items]
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = ids[start : start + _IN_CHUNK]
                marks = ", ".join("?" * len(chunk))
                for row in conn.execute(f'SELECT id, doc FROM "{t}" WHERE id IN ({marks})', chunk):
                    existing[row[0]] = _loads(row[1])
            for record_id, fields in items:
                doc = existing.get(record_id)
                if doc is not None and not matches(doc, match):
                    raise DuplicateKey(f"{t}: id {record_id!r} is taken")
                if doc is None:
                    doc = {"_id": record_id, **{k: v for k, v in (match or {}).items()}}
                    apply_changes(doc, fields, None, None)
                    conn.execute(
                        f'INSERT INTO "{t}" (id, doc) VALUES (?, ?)', (record_id, _dumps(doc))
                    )
                else:
                    apply_changes(doc, fields, None, None)
                    conn.execute(f'UPDATE "{t}" SET doc = ? WHERE id = ?', (_dumps(doc), record_id))
                existing[record_id] = doc
            return len(items)

        return await self._write(write)

    async def delete(self, table: str, id: str, match: Match | None = None) -> bool:
        extra, args = self._match_sql(match)
        sql = f'DELETE FROM "{self._table(table)}" WHERE id = ?{extra}'

        def write(conn: sqlite3.Connection) -> bool:
            return conn.execute(sql, [id, *args]).rowcount > 0

        return await self._write(write)

    # -- lifecycle --------------------------------------------------------------------------
    async def ensure_schema(self) -> None:
        await asyncio.to_thread(self._ensure_schema_sync)

    async def close(self) -> None:
        """Finish the queued writes, then stop the threads and close every connection."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            writer, pool = self._writer, self._pool
            if writer is not None:
                self._queue.put(None)
        if writer is not None:
            await asyncio.to_thread(writer.join)
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, True)
        with self._lock:
            conns, self._reader_conns = self._reader_conns, []
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()


def _where_sql(clauses: list[str]) -> str:
    return (" WHERE " + " AND ".join(clauses)) if clauses else ""


def _bounded(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be 1..{MAX_PAGE}, got {limit}")
    return limit


def _record_id(doc: Document) -> str:
    record_id = doc.get("_id")
    if not isinstance(record_id, str) or not record_id:
        raise ValueError("a record needs a string _id")
    return record_id


def _patch_one(
    conn: sqlite3.Connection, t: str, record_id: str, match: Match | None, change: Change
) -> Document | None:
    """Read-modify-write inside the writer's IMMEDIATE transaction: atomic across processes."""
    changes, increments = change.get("changes"), change.get("increments")
    minimums = change.get("minimums")
    upsert = change.get("upsert", False)
    on_insert = change.get("on_insert")
    row = conn.execute(f'SELECT doc FROM "{t}" WHERE id = ?', (record_id,)).fetchone()
    doc = None if row is None else _loads(row[0])
    if doc is not None and not matches(doc, match):
        if upsert:
            raise DuplicateKey(f"{t}: id {record_id!r} is taken")
        return None
    if doc is None:
        if not upsert:
            return None
        doc = {"_id": record_id, **dict(match or {}), **dict(on_insert or {})}
        apply_changes(doc, changes, increments, minimums)
        conn.execute(f'INSERT INTO "{t}" (id, doc) VALUES (?, ?)', (record_id, _dumps(doc)))
        return doc
    apply_changes(doc, changes, increments, minimums)
    conn.execute(f'UPDATE "{t}" SET doc = ? WHERE id = ?', (_dumps(doc), record_id))
    return doc
