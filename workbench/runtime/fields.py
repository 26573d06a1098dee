"""The value types of a request row, one per column kind, and what each accepts (deliberately).

- ``number``: a JSON number (an integer is taken as a float); never a string, a boolean,
  ``NaN`` or ``Infinity`` (send ``null`` for a missing value where the column allows it).
- ``integer``: a JSON integer within int64, or a number with no fraction (``3.0``, as pandas writes
  an integer column with gaps); never ``3.5``, ``"3"`` or ``true``.
- ``boolean``: JSON ``true`` or ``false`` only; ``"yes"``, ``"true"``, ``1`` are refused.
- ``category``: a JSON string of at most :data:`MAX_TEXT_CHARS` characters (an unseen value is
  echoed in the row's warnings and listed in the monitoring report, so it is bounded like
  text); a number is refused (send ``"1"`` for the category ``1``).
- ``text``: a JSON string of at most :data:`MAX_TEXT_CHARS` characters (free text, identifiers);
  a number is refused. Any string is passed to the model as it is: there is no list of values
  to check it against, and so no "unseen" warning or replacement.

A nullable column also takes ``null`` or may be left out. Anything else is a 400 naming the row
and the field.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_TEXT_CHARS = 100_000
"""Longest value of a ``text`` or ``category`` field (characters); a longer one is a 400 naming
the field."""


def _whole(value: Any) -> Any:
    """``3.0`` -> ``3``; anything else is left to the integer check (which refuses it)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Integer = Annotated[int, Field(strict=True, ge=INT64_MIN, le=INT64_MAX), BeforeValidator(_whole)]
Boolean = Annotated[bool, Field(strict=True)]
Category = Annotated[str, Field(strict=True, max_length=MAX_TEXT_CHARS)]
Text = Annotated[str, Field(strict=True, max_length=MAX_TEXT_CHARS)]
