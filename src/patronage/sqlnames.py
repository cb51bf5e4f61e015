"""How names and configured paths enter SQL text: the one escaping helper.

Data values never enter SQL text (DataFrame/DeltaTable API or parameter
markers). What remains are identifiers (catalog, schema, table, column names)
and, where Spark has no API for them, configured locations; both are escaped
here and nowhere else.
"""

from __future__ import annotations


def quote_identifier(*parts: str) -> str:
    """``a.b.c`` as a quoted multi-part identifier; a backtick in a part is doubled."""
    return ".".join("`" + part.replace("`", "``") + "`" for part in parts)


def string_literal(value: str) -> str:
    """A SQL string literal of ``value`` (for a LOCATION clause): quotes and backslashes escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
