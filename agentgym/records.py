"""Rows of a dataset file — JSONL, JSONL.gz or parquet — for every loader that takes one (search
questions and corpora, code and math datasets, MCP tasks), so each reports a bad file the same way.

Pure standard library; parquet needs ``pyarrow`` (extra ``parquet``), imported only for a parquet file.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["PARQUET_HINT", "read_rows"]

PARQUET_HINT = "pip install 'agentgym-rl[parquet]'"


def read_rows(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line or row number, row)`` of every JSON object in a JSONL (plain or ``.gz``) or parquet
    file; parquet is recognised by its ``PAR1`` magic bytes, whatever the file is called. Blank
    lines are skipped; a line that is not a JSON object is a ``ValueError`` naming ``path:line``."""
    path = Path(path)
    with open(path, "rb") as f:
        is_parquet = f.read(4) == b"PAR1"
    yield from (_read_parquet(path) if is_parquet else _read_jsonl(path))


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        try:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as e:
                    raise ValueError(f"{path}:{lineno}: not JSON: {e}") from None
                if not isinstance(row, dict):
                    raise ValueError(f"{path}:{lineno}: expected a JSON object")
                yield lineno, row
        except UnicodeDecodeError as e:  # decoding runs ahead of the lines: no line number
            raise ValueError(f"{path}: not UTF-8 text ({e.reason}); "
                             "expected JSONL, JSONL.gz or parquet") from None


def _read_parquet(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as e:
        raise ImportError(f"{path} is a parquet file; reading it needs pyarrow: {PARQUET_HINT}") from e
    number = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=4096):
        for row in batch.to_pylist():
            number += 1
            yield number, row
