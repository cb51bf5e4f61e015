"""Identifiers and configured locations enter SQL text only through sqlnames."""

from __future__ import annotations

from patronage.sqlnames import quote_identifier, string_literal


def test_identifiers_are_quoted_and_backticks_doubled():
    assert quote_identifier("spark_catalog", "s", "t") == "`spark_catalog`.`s`.`t`"
    assert quote_identifier("we`ird") == "`we``ird`"


def test_locations_are_string_literals_with_quotes_escaped():
    assert string_literal("/a/b") == "'/a/b'"
    assert string_literal("/it's\\x") == "'/it\\'s\\\\x'"
