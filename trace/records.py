"""Where the trace index reads the records behind its seqs.

The index keeps only topology and entry seqs; quantities, QC results, suppliers and the rest
stay in the entries, where they are the truth. Queries and alert rules read them through a
`Records` source: the ledger's committed entries in the server (`LedgerRecords`, over the
reader of ledger/log.py), a plain list in tests and benchmarks (`ListRecords`). Neither the
index nor the queries do any I/O of their own, and this module imports no storage.

A correction's seq reads as the body it puts in force: the corrected record, under the
corrected record's id (DESIGN section 3).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from lotledger.v1 import records_pb2


def in_force(record: records_pb2.Record) -> records_pb2.Record:
    """The body a record puts in force: itself, or for a correction the corrected body."""
    if record.WhichOneof("body") != "correction":
        return record
    body = records_pb2.Record()
    body.CopyFrom(record.correction.corrected)
    body.record_id, body.submitter = record.correction.corrects_record_id, record.submitter
    return body


class Records(Protocol):
    def record(self, seq: int) -> records_pb2.Record:
        """The record in force at `seq` (see `in_force`)."""
        ...

    def many(self, seqs: Iterable[int]) -> dict[int, records_pb2.Record]:
        """Several at once (one read transaction for the ledger)."""
        ...

    def seq_of(self, record_id: str, submitter: str = "") -> int | None:
        """The seq of `submitter`'s record `record_id` (record ids are scoped by submitter
        under rules 2), or None."""
        ...


class ListRecords:
    """Records held in memory, seq = position: for tests, benchmarks and replays."""

    def __init__(self, records: Sequence[records_pb2.Record] = ()):
        self.items: list[records_pb2.Record] = []
        self._seqs: dict[str, int] = {}
        self._scoped: dict[tuple[str, str], int] = {}
        for r in records:
            self.append(r)

    def append(self, record: records_pb2.Record) -> int:
        seq = len(self.items)
        self.items.append(record)
        self._seqs.setdefault(record.record_id, seq)
        self._scoped.setdefault((record.submitter, record.record_id), seq)
        return seq

    def record(self, seq: int) -> records_pb2.Record:
        return in_force(self.items[seq])

    def many(self, seqs: Iterable[int]) -> dict[int, records_pb2.Record]:
        return {s: in_force(self.items[s]) for s in seqs}

    def seq_of(self, record_id: str, submitter: str = "") -> int | None:
        if submitter and (submitter, record_id) in self._scoped:
            return self._scoped[(submitter, record_id)]
        return self._seqs.get(record_id)


class RecordReader(Protocol):
    """What LedgerRecords reads through (ledger.log.LogReader)."""

    def records(self, seqs: Iterable[int]) -> dict[int, records_pb2.Record]: ...

    def seq_of(self, record_id: str, submitter: str = "") -> int | None: ...


class LedgerRecords:
    """Records read from the ledger's committed entries, in force."""

    def __init__(self, reader: RecordReader):
        self.reader = reader

    def record(self, seq: int) -> records_pb2.Record:
        return self.many([seq])[seq]

    def many(self, seqs: Iterable[int]) -> dict[int, records_pb2.Record]:
        """Raises NotFound (lotledger.ledger.errors) for a seq beyond the log."""
        return {seq: in_force(record) for seq, record in self.reader.records(seqs).items()}

    def seq_of(self, record_id: str, submitter: str = "") -> int | None:
        return self.reader.seq_of(record_id, submitter)
