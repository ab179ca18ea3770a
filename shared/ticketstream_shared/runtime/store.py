"""A service's local state store: RocksDB on local disk (through rocksdict), holding state that grows with history so
that memory does not have to, with the input offsets it has applied written atomically with the state.

A process restarted on the same disk opens its store and reads its inputs only past what the store has applied. On a
new machine the store is rebuilt from the service's changelog (changelog.py), a compacted topic that holds the latest
record of every key, never from the whole input history.

Keys and values are bytes; what they mean belongs to the service. Keys beginning with NUL are the store's own.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from aiokafka import AIOKafkaConsumer, TopicPartition
from rocksdict import BlockBasedOptions, Options, Rdict, WriteBatch, WriteOptions

log = logging.getLogger(__name__)

_APPLIED = b"\x00applied\x00"
_RESTORED = b"\x00restored"
_LAYOUT = b"\x00layout"
#: How often written state is flushed to disk: a process killed loses at most about this much of its store (its
#: writes skip the write-ahead log), which it then reads again from its inputs or its changelog.
FLUSH_EVERY_S = 5.0


class Changes:
    """What one atomic write does: puts, deletes, and how far each input partition has been applied."""

    def __init__(self) -> None:
        self._batch = WriteBatch(raw_mode=True)
        #: What each key is given (a put or put_unencoded after it replaces it here).
        self._written: dict[bytes, bytes | _Unencoded | None] = {}
        self._counts: dict[bytes, int] = {}
        self._unencoded: set[bytes] = set()

    def put(self, key: bytes, value: bytes) -> None:
        self._batch.put(key, value)
        self._written[key] = value

    def delete(self, key: bytes) -> None:
        self._batch.delete(key)
        self._written[key] = None

    def put_unencoded(self, key: bytes, value: object, encode: Callable[[Any], bytes]) -> None:
        """Put `value`, encoded once, when this is written: a value rewritten often in one write (a ticket's summary
        by each of its events) is read back as it is (`unencoded`), neither decoded nor encoded in between."""
        self._written[key] = _Unencoded(value, encode)
        self._unencoded.add(key)

    def unencoded(self, key: bytes) -> object | None:
        """The value last given to `put_unencoded` for `key`, if nothing was put or deleted there since."""
        held = self._written.get(key)
        return held.value if type(held) is _Unencoded else None

    def count(self, key: bytes, step: int) -> None:
        """Add `step` to the count kept at `key` (as decimal text) as the store holds it when this is written:
        writes prepared side by side each add their own."""
        self._counts[key] = self._counts.get(key, 0) + step

    def applied(self, topic: str, partition: int, next_offset: int) -> None:
        """`topic`'s `partition` is applied up to (not including) `next_offset`."""
        self.put(_applied_key(topic, partition), str(next_offset).encode())

    def restored(self) -> None:
        """The store holds a whole restore: a changelog read to its end, or a start from an empty input."""
        self.put(_RESTORED, b"1")

    def pending(self, key: bytes) -> bytes | None | bool:
        """The value this write gives `key`: bytes, None for a delete, or False if it does not touch it (counts are
        added when it is written)."""
        held = self._written.get(key, False)
        return held.encode(held.value) if type(held) is _Unencoded else held  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self._written) + len(self._counts)


class _Unencoded(NamedTuple):
    value: Any
    encode: Callable[[Any], bytes]


class LocalStore:
    """One RocksDB database. `path=None` gives a temporary one, removed on close: a process with no disk of its own
    (a test, or a deployment that chose not to keep one) restores from the changelog on every start."""

    def __init__(self, path: Path | None, layout: str | None = None) -> None:
        """`layout` names what the service's keys mean: a store written in another one (an earlier release) is
        emptied, to be restored from the changelog, whose reader knows every layout its records were written in."""
        self._temporary = path is None
        self.path = Path(tempfile.mkdtemp(prefix="ticketstream-store-")) if path is None else path
        self.path.mkdir(parents=True, exist_ok=True)
        self._db = self._open()
        self._flushed_at = time.monotonic()
        self._layout = None if layout is None else layout.encode()
        if self._layout is not None and (held := self._db.get(_LAYOUT)) != self._layout:
            if not self._empty():
                log.warning(
                    "the local store was written in another layout; starting it over",
                    extra={"store": str(self.path), "held": held and held.decode(), "layout": layout},
                )
            self.clear()

    def _open(self) -> Rdict:
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        options.increase_parallelism(2)  # flushes and compactions in the background, not stalling writes
        tables = BlockBasedOptions()
        # Most reads of a key a store does not hold yet (a new ticket's summary) would otherwise search every
        # table on disk: 35% of a restore's time at 1M tickets (py-spy) went to such misses.
        tables.set_bloom_filter(10, False)
        options.set_block_based_table_factory(tables)
        # The same for keys not yet flushed: a miss searched the memtable's skip list (0.66 -> 0.35 us a miss).
        options.set_memtable_whole_key_filtering(True)
        options.set_memtable_prefix_bloom_ratio(0.1)
        db = Rdict(str(self.path), options)
        # No write-ahead log (it doubled the cost of a write): a process killed with unflushed writes reopens its
        # store as it stood at the last flush, state and offsets together (each write is one atomic batch), and
        # reads its inputs again from there; applying them again changes nothing.
        unlogged = WriteOptions()
        unlogged.disable_wal = True  # type: ignore[method-assign, assignment]  # a property; rocksdict's stub says a method
        db.set_write_options(unlogged)
        return db

    def _empty(self) -> bool:
        cursor = self._db.iter()  # gone with this frame: an open iterator keeps the database from closing
        cursor.seek_to_first()
        return not cursor.valid()

    def get(self, key: bytes, within: Changes | None = None) -> bytes | None:
        """The value of `key`, as `within` (a write being prepared) will leave it if given."""
        if within is not None and (pending := within.pending(key)) is not False:
            return pending  # type: ignore[return-value]
        return self._db.get(key)

    def scan(self, start: bytes, prefix: bytes, *, backwards: bool = False) -> Iterator[tuple[bytes, bytes]]:
        """Keys from `start` on, in order (or, `backwards`, from the last at or before `start`, last first), for as
        long as they begin with `prefix`."""
        cursor = self._db.iter()
        if backwards:
            cursor.seek_for_prev(start)
        else:
            cursor.seek(start)
        step = cursor.prev if backwards else cursor.next
        while cursor.valid():
            key = cursor.key()
            if not key.startswith(prefix):
                return
            yield key, cursor.value()
            step()

    def applied(self, topic: str) -> dict[int, int]:
        """Per partition of `topic`, the offset of the first message not yet applied (partitions never applied are
        absent)."""
        prefix = _APPLIED + topic.encode() + b"\x00"
        return {int(key[len(prefix) :]): int(value) for key, value in self.scan(prefix, prefix)}

    @property
    def is_restored(self) -> bool:
        """Whether the store holds a whole state: otherwise it is new, or a restore into it was interrupted."""
        return self._db.get(_RESTORED) is not None

    def write(self, changes: Changes) -> None:
        for key in changes._unencoded:
            if type(held := changes._written[key]) is _Unencoded:  # else put or deleted since, in the batch already
                changes._batch.put(key, held.encode(held.value))
        for key, step in changes._counts.items():
            if step:
                counted = self.get(key, changes)
                changes.put(key, str(int(counted or 0) + step).encode())
        if len(changes):
            self._db.write(changes._batch)
            if (now := time.monotonic()) - self._flushed_at >= FLUSH_EVERY_S:
                self._flushed_at = now
                self._db.flush(wait=False)

    def clear(self) -> None:
        """Empty the store: what it held belongs to no log this service reads (see store_belongs_to)."""
        self._db.close()
        Rdict.destroy(str(self.path))
        self._db = self._open()
        if self._layout is not None:
            self._db.put(_LAYOUT, self._layout)

    def close(self) -> None:
        self._db.flush()
        self._db.close()
        if self._temporary:
            shutil.rmtree(self.path, ignore_errors=True)


def _applied_key(topic: str, partition: int) -> bytes:
    return _APPLIED + topic.encode() + b"\x00" + str(partition).encode()


async def store_belongs_to(consumer: AIOKafkaConsumer, topic: str, store: LocalStore) -> bool:
    """Whether what `store` applied of `topic` can be this topic's: not if it applied past where a partition ends.
    Then the topic was deleted and created again, or the disk came from another cluster, and the store must start
    over rather than serve tickets the log never had."""
    applied = store.applied(topic)
    if not applied:
        return True
    ends = await consumer.end_offsets([TopicPartition(topic, p) for p in applied])
    beyond = {tp.partition: end for tp, end in ends.items() if applied[tp.partition] > end}
    if beyond:
        log.error(
            "the local store is ahead of the log; starting it over",
            extra={"topic": topic, "store": str(store.path), "applied": applied, "log_ends": beyond},
        )
    return not beyond
