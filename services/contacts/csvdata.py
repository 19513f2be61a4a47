"""Contacts from CSV: header mapping, row parsing, and per-row problems by row number.

Row numbers are spreadsheet row numbers: the header is row 1, the first contact row 2, so a
rep can find the row in the file they uploaded.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass

from core.errors import FieldError, InvalidInput, PayloadTooLarge
from services.inputs import CsvData

FIELDS = ("firstName", "lastName", "phoneNumber", "email")

# Header spellings recognised when the caller sends no `columns` mapping (compared lower-cased,
# with spaces, dashes and underscores removed).
ALIASES: dict[str, tuple[str, ...]] = {
    "firstName": ("firstname", "first", "givenname", "name"),
    "lastName": ("lastname", "last", "surname", "familyname"),
    "phoneNumber": ("phonenumber", "phone", "mobile", "mobilenumber", "cell", "cellphone", "tel"),
    "email": ("email", "emailaddress", "mail"),
}


@dataclass(frozen=True, slots=True)
class CsvRow:
    """One data row, its values by contact field, and its spreadsheet row number."""

    row: int
    values: dict[str, str]


def _squash(header: str) -> str:
    return "".join(ch for ch in header.lower() if ch.isalnum())


def _column_indexes(headers: list[str], columns: dict[str, str] | None) -> dict[str, int]:
    """Maps each contact field to its column, or refuses the CSV as a whole."""
    errors: list[FieldError] = []
    found: dict[str, int] = {}
    if columns:
        position = {h.strip(): i for i, h in enumerate(headers)}
        for fieldname, header in columns.items():
            if fieldname not in FIELDS:
                errors.append(
                    FieldError(
                        ("rawCsvData", "columns", fieldname),
                        "UNKNOWN_FIELD",
                        f"Unknown contact field; use one of: {', '.join(FIELDS)}",
                    )
                )
            elif header.strip() not in position:
                errors.append(
                    FieldError(
                        ("rawCsvData", "columns", fieldname),
                        "CSV_MISSING_COLUMN",
                        f"No column named '{header}' in the CSV header",
                    )
                )
            else:
                found[fieldname] = position[header.strip()]
    squashed = {_squash(h): i for i, h in reversed(list(enumerate(headers)))}
    for fieldname, names in ALIASES.items():
        if fieldname in found or (columns and fieldname in columns):
            continue
        for name in names:
            if name in squashed:
                found[fieldname] = squashed[name]
                break
    if "phoneNumber" not in found and not errors:
        errors.append(
            FieldError(
                ("rawCsvData", "columns", "phoneNumber"),
                "CSV_MISSING_COLUMN",
                "The CSV has no phone column; name it 'Phone' or map it with columns.phoneNumber",
            )
        )
    if errors:
        raise InvalidInput("rawCsvData cannot be read", errors)
    return found


def _table(data: CsvData) -> tuple[list[str], Iterator[list[str | None]]]:
    if data.csv is not None and (data.headers is not None or data.rows is not None):
        raise InvalidInput(
            "rawCsvData cannot be read",
            [
                FieldError(
                    ("rawCsvData",),
                    "AMBIGUOUS_CSV",
                    "Send either 'csv' or 'headers' and 'rows', not both",
                )
            ],
        )
    if data.csv is not None:
        # Excel for Mac writes bare CR line ends; read every convention the same way.
        text = data.csv.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
        reader = csv.reader(io.StringIO(text), delimiter=data.delimiter, strict=True)
        try:
            headers = next(reader, None)
        except csv.Error as exc:
            raise InvalidInput(
                "rawCsvData cannot be read",
                [FieldError(("rawCsvData", "csv"), "CSV_MALFORMED", f"Header row: {exc}")],
            ) from exc
        if headers is None:
            raise InvalidInput(
                "rawCsvData cannot be read",
                [
                    FieldError(
                        ("rawCsvData", "csv"),
                        "CSV_EMPTY",
                        "The CSV is empty; the first row is the header",
                    )
                ],
            )
        return headers, iter(reader)  # type: ignore[arg-type]
    if data.headers is None:
        raise InvalidInput(
            "rawCsvData cannot be read",
            [FieldError(("rawCsvData",), "CSV_EMPTY", "Send 'csv' text, or 'headers' and 'rows'")],
        )
    return data.headers, iter(data.rows or [])


@dataclass(frozen=True, slots=True)
class CsvProblem:
    """A row that cannot be read at all (a quoting error, a ragged row)."""

    row: int
    code: str
    message: str


def read_rows(data: CsvData, *, max_rows: int) -> tuple[list[CsvRow], list[CsvProblem]]:
    """Returns the readable rows and the unreadable ones; a CSV wrong as a whole raises.

    More than `max_rows` non-empty rows is refused as too large while reading, so a huge
    file costs no more than the rows it is allowed.
    """
    headers, rows = _table(data)
    indexes = _column_indexes([h or "" for h in headers], data.columns)
    good: list[CsvRow] = []
    bad: list[CsvProblem] = []
    number = 1
    while True:
        number += 1
        try:
            cells = next(rows)
        except StopIteration:
            break
        except csv.Error as exc:
            bad.append(CsvProblem(number, "CSV_MALFORMED", f"Row {number}: {exc}"))
            continue  # the reader resumes at the next line
        if not any((c or "").strip() for c in cells):
            continue
        if len(good) + len(bad) >= max_rows:
            raise PayloadTooLarge(
                f"The CSV has more than {max_rows} rows",
                [FieldError(("rawCsvData",), "TOO_MANY_RECIPIENTS", f"At most {max_rows} rows")],
            )
        if len(cells) > len(headers):
            bad.append(
                CsvProblem(
                    number,
                    "CSV_RAGGED_ROW",
                    f"Row {number} has {len(cells)} cells; the header has {len(headers)}",
                )
            )
            continue
        values = {f: (cells[i] or "").strip() for f, i in indexes.items() if i < len(cells)}
        good.append(CsvRow(number, values))
    return good, bad
