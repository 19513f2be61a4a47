"""CSV for spreadsheets: RFC 4180 quoting by the `csv` module, and cells that a spreadsheet would
run as formulas neutralised.

A name such as `=HYPERLINK("http://evil", "Click")` typed into a form, imported or sent in an
inbound text would run when an export is opened in Excel, LibreOffice or Google Sheets (CSV
injection, OWASP). A cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is
prefixed with `'`, which spreadsheets show as text. A cell that is only a number (`+14155550101`,
`-3`) is left alone: it cannot hold a formula, and a phone number stays importable.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")

Cell = str | int | bool | datetime | None


@dataclass(frozen=True)
class Export:
    """What a CSV export writes: its header, and its rows a page at a time."""

    header: Sequence[str]
    pages: AsyncIterator[list[list[Cell]]]

    def chunks(self) -> AsyncIterator[bytes]:
        """Returns the CSV bytes, a page per chunk."""
        return csv_chunks(self.header, self.pages)


def cell(value: Cell) -> str:
    """Returns the text of one cell: timestamps in ISO 8601 UTC, booleans as true/false, none
    as empty, and text that could start a formula quoted."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    text = str(value)
    if text.startswith(FORMULA_STARTS) and not NUMBER.fullmatch(text):
        return "'" + text
    return text


async def csv_chunks(
    header: Sequence[str], pages: AsyncIterator[list[list[Cell]]]
) -> AsyncIterator[bytes]:
    """Yields the header, then one UTF-8 chunk per page of rows (`\\r\\n` line ends)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    yield _drain(buffer)
    async for rows in pages:
        writer.writerows([cell(value) for value in row] for row in rows)
        chunk = _drain(buffer)
        if chunk:
            yield chunk


def _drain(buffer: io.StringIO) -> bytes:
    data = buffer.getvalue().encode()
    buffer.seek(0)
    buffer.truncate()
    return data
