"""CSV the portal writes: every cell neutralised so a spreadsheet shows it and never runs it.

Client names, phones and warehouse values come from outside; a cell such as `=HYPERLINK(…)`,
`@SUM(…)` or `-2+3+cmd|' /C calc'!A0` would be run as a formula by the spreadsheet a billing
manager opens the file in. So a cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage
return is written with one apostrophe in front — and so is a cell that already begins with an
apostrophe, so that the escaping can always be undone:

    written         read back
    '=SUM(A1)       =SUM(A1)
    '-12.50         -12.50
    ''quoted        'quoted
    Ada Lovelace    Ada Lovelace

Reading a file back (`csv_cell_read`): a cell that begins with an apostrophe loses that one
apostrophe; every other cell is as written. README.md says the same for people.
"""

# Reference: https://owasp.org/www-community/attacks/CSV_Injection

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Mapping, Sequence

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
ESCAPE = "'"


def csv_cell(value: object) -> str:
    """`value` as the text of one CSV cell a spreadsheet will not run (None is empty)."""
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_STARTS) or text.startswith(ESCAPE):
        return ESCAPE + text
    return text


def csv_cell_read(text: str) -> str:
    """The value a cell written by `csv_cell` held."""
    return text[1:] if text.startswith(ESCAPE) else text


def csv_row(values: Iterable[object]) -> list[str]:
    return [csv_cell(value) for value in values]


class _Line:
    """A file-like object that keeps the last line the csv module wrote (for streaming)."""

    text = ""

    def write(self, text: str) -> None:
        self.text = text


def csv_lines(rows: Iterable[Iterable[object]]) -> Iterator[str]:
    """Each row as one line of CSV text (`\\r\\n` ended, quoted as needed), every cell neutralised."""
    line = _Line()
    writer = csv.writer(line)
    for row in rows:
        writer.writerow(csv_row(row))
        yield line.text


def csv_dict_lines(rows: Iterable[Mapping[str, object]], *, fieldnames: Sequence[str]) -> Iterator[str]:
    """The header, then each mapping as one CSV line in `fieldnames` order (missing keys empty)."""
    yield from csv_lines([list(fieldnames)])
    yield from csv_lines([row.get(name) for name in fieldnames] for row in rows)
