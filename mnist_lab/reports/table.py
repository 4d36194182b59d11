"""Every table of a page, drawn one way: a column that reads the same on every row is said once, in a line
above the table, and left out of it, so that the columns left are those a reader compares rows by.

A table names its columns with how that line would say a shared value ("{} parameters"), or None for a
column that always stays: what names a row, and what was measured (a measurement that happens to agree is
a finding, not a setting to fold away). A phrase may say nothing (""): the column still folds.
"""
from __future__ import annotations

from typing import Callable, Union

Phrase = Union[str, Callable[[str], str], None]


def markdown(columns: list[tuple[str, Phrase]], rows: list[list[str]], lead: str) -> list[str]:
    """The table's Markdown lines, after a line "`lead`: what every row shares." when some foldable column
    has one value on all of two or more rows (one row shares everything with itself: nothing folds)."""
    shared = [i for i, (_, phrase) in enumerate(columns)
              if phrase is not None and len(rows) > 1 and len({row[i] for row in rows}) == 1]
    keep = [i for i in range(len(columns)) if i not in shared]
    said = [text for i in shared if (text := _say(columns[i][1], rows[0][i]))]  # "": nothing worth a word
    md = [f"{lead}: {'; '.join(said)}.", ""] if said else []
    md += ["| " + " | ".join(columns[i][0] for i in keep) + " |", "|" + "---|" * len(keep)]
    return md + ["| " + " | ".join(row[i] for i in keep) + " |" for row in rows]


def _say(phrase: Phrase, value: str) -> str:
    return phrase(value) if callable(phrase) else phrase.format(value)
