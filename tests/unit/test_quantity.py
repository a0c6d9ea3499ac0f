"""Quantity parsing, canonical printing and errors (apimachinery api/resource)."""
from fractions import Fraction

import pytest

from shim.resources import quantity as q


@pytest.mark.parametrize("text,value", [
    ("100m", Fraction(1, 10)),
    ("1Gi", 1024 ** 3),
    ("1e3", 1000),
    ("0.5", Fraction(1, 2)),
    ("1.5Gi", 1536 * 1024 ** 2),
    ("-1", -1),
    ("2k", 2000),
    ("1E3", 1000),
    ("1.5e-3", Fraction(3, 2000)),
    ("0", 0),
    (".5", Fraction(1, 2)),
    ("123Mi", 123 * 1024 ** 2),
])
def test_parse_values(text, value):
    assert q.parse_quantity(text) == value


@pytest.mark.parametrize("text,canonical", [
    ("100m", "100m"),
    ("0.5", "500m"),
    ("1000m", "1"),
    ("1024Mi", "1Gi"),
    ("1.5Gi", "1536Mi"),
    ("0.5Ki", "512"),
    ("1.5", "1500m"),
    ("1e3", "1e3"),
    ("1.5e-3", "1500e-6"),
    ("0.1", "100m"),
    ("1000000", "1M"),
    ("128974848", "128974848"),
    ("0.0000000001", "1n"),        # rounded up to the nano scale
    ("-0", "0"),
])
def test_canonical_form(text, canonical):
    assert q.canonical(text) == canonical


@pytest.mark.parametrize("text", ["1.2.3", "", "abc", "1.5.", "1 Gi", "5X", "1Kb"])
def test_format_errors(text):
    with pytest.raises(q.QuantityError) as e:
        q.parse(text)
    assert str(e.value) == ("quantities must match the regular expression "
                            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")


@pytest.mark.parametrize("text", ["1Ki3", "1m3", "1KK", "2mi"])
def test_suffix_errors(text):
    with pytest.raises(q.QuantityError, match="unable to parse quantity's suffix"):
        q.parse(text)


def test_round_up_to_milli():
    assert q.round_up("0.0001") == "1m"
    assert q.round_up("1.5m") == "2m"
    assert q.round_up("250m") == "250m"
    assert q.round_up("1Gi") == "1Gi"


def test_format_quantity_binary_and_decimal():
    assert q.format_quantity(Fraction(3 * 1024 ** 3), q.BINARY_SI) == "3Gi"
    assert q.format_quantity(Fraction(1000), q.BINARY_SI) == "1k"      # |v| < 1024 -> DecimalSI
    assert q.format_quantity(Fraction(3, 4)) == "750m"
    assert q.format_quantity(Fraction(5000), q.DECIMAL_EXPONENT) == "5e3"


def test_arithmetic_helpers():
    assert q.milli_value("1.5") == 1500
    assert q.milli_value("1n") == 1           # rounds up
    assert q.int_value("1500m") == 2
    assert q.add("500m", "1") == "1500m"
    assert q.add("1Gi", "512Mi") == "1536Mi"
    assert q.is_quantity("10") and not q.is_quantity("ten")
