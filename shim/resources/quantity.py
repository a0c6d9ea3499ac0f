"""Kubernetes resource quantities (k8s.io/apimachinery/pkg/api/resource), as exact Fractions.

Owns parsing ("100m", "1Gi", "1e3", "0.5"), the canonical wire form the apiserver writes
back ("0.5" -> "500m", "1024Mi" -> "1Gi"), rounding, and the exact error messages of
ParseQuantity. Values are `fractions.Fraction`s so quota and scheduling arithmetic is exact;
the original format (DecimalSI / BinarySI / DecimalExponent) only matters for printing.
"""
from __future__ import annotations

import functools
import math
from fractions import Fraction

DECIMAL_SI = "DecimalSI"
BINARY_SI = "BinarySI"
DECIMAL_EXPONENT = "DecimalExponent"

ERR_FORMAT_WRONG = ("quantities must match the regular expression "
                    "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
ERR_NUMERIC = "unable to parse numeric value"
ERR_SUFFIX = "unable to parse quantity's suffix"

_BIN_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DEC_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12,
                 "P": 15, "E": 18}
_DEC_BY_EXP = {v: k for k, v in _DEC_SUFFIXES.items()}
_BIN_BY_EXP = {v: k for k, v in _BIN_SUFFIXES.items()}
_SUFFIX_CHARS = set("eEinumkKMGTP")
_NANO = Fraction(1, 10 ** 9)
_MAX_INT64 = 2 ** 63 - 1


class QuantityError(ValueError):
    """A string that is not a quantity; str() is the apimachinery error text."""


class Quantity:
    """A parsed quantity: exact `value` plus the `format` it was written in.

    `text` is the string the apiserver would serialize (the original when Go keeps it,
    else the canonical form).
    """

    __slots__ = ("value", "format", "_kept")

    def __init__(self, value: Fraction, fmt: str = DECIMAL_SI, kept: str | None = None):
        self.value = Fraction(value)
        self.format = fmt
        self._kept = kept

    @property
    def text(self) -> str:
        return self._kept if self._kept is not None else format_quantity(self.value, self.format)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Quantity({self.text!r})"

    def __eq__(self, other) -> bool:
        if isinstance(other, Quantity):
            return self.value == other.value
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.value)


# ---- parsing -------------------------------------------------------------------------------

def _split(s: str) -> tuple[bool, str, str, str]:
    """Split like apimachinery's parseQuantityString: (positive, num, denom, suffix)."""
    pos, end, positive = 0, len(s), True
    if s[0] in "+-":
        positive = s[0] != "-"
        pos = 1
    while pos < end and s[pos] == "0":
        pos += 1
    if pos >= end:
        return positive, "0", "", ""
    start = pos
    while pos < end and s[pos].isdigit() and s[pos].isascii():
        pos += 1
    num = s[start:pos] or "0"
    denom = ""
    if pos < end and s[pos] == ".":
        pos += 1
        start = pos
        while pos < end and s[pos].isdigit() and s[pos].isascii():
            pos += 1
        denom = s[start:pos]
    suffix_start = pos
    while pos < end and s[pos] in _SUFFIX_CHARS:
        pos += 1
    if pos < end and s[pos] in "+-":
        pos += 1
    while pos < end and s[pos].isdigit() and s[pos].isascii():
        pos += 1
    if pos < end:
        raise QuantityError(ERR_FORMAT_WRONG)
    return positive, num, denom, s[suffix_start:]


def _interpret(suffix: str) -> tuple[int, int, str]:
    """(base, exponent, format) for a suffix, or QuantityError(ERR_SUFFIX)."""
    if suffix in _DEC_SUFFIXES:
        return 10, _DEC_SUFFIXES[suffix], DECIMAL_SI
    if suffix in _BIN_SUFFIXES:
        return 2, _BIN_SUFFIXES[suffix], BINARY_SI
    if len(suffix) > 1 and suffix[0] in "eE":
        rest = suffix[1:]
        body = rest[1:] if rest[:1] in "+-" else rest
        if body.isdigit() and body.isascii():
            return 10, int(rest), DECIMAL_EXPONENT
    raise QuantityError(ERR_SUFFIX)


def _round_up_nano(v: Fraction) -> Fraction:
    """Round away from zero to a multiple of 1e-9, as ParseQuantity does."""
    scaled = v / _NANO
    if scaled.denominator == 1:
        return v
    mag = math.ceil(abs(scaled))
    return Fraction(mag if v > 0 else -mag) * _NANO


def _keeps_original(s: str, base: int, exp: int, num: str, denom: str) -> bool:
    """Whether Go's fast path keeps the user's string as the serialized form."""
    if len(num) + len(denom) > 18:
        return False
    shifted = num + denom
    if base == 2:
        if denom or exp < 0:
            return False
        if 15 - len(num) - int(exp * 3 / 10) - 1 < 0:
            return False
        value = int(shifted)
        if value * (1 << exp) > _MAX_INT64:
            return False
        return exp % 10 == 0 and (value & 0x07) != 0
    scale = exp - len(denom)
    if scale < -9:
        return False
    return scale % 3 == 0 and not shifted.endswith("000") and shifted[0] != "0"


def parse(s: str) -> Quantity:
    """Parse a quantity string into a Quantity; raises QuantityError with Go's message.

    Results for strings are cached (a pod's few quantity strings are parsed many times
    on the create path); Quantity objects are treated as immutable."""
    if isinstance(s, str):
        return _parse_cached(s)
    return _parse(s)


@functools.lru_cache(maxsize=4096)
def _parse_cached(s: str) -> Quantity:
    return _parse(s)


def canonical(s) -> str:
    """The string the apiserver returns for a quantity the client sent ("0.5" -> "500m")."""
    if isinstance(s, str):
        return _canonical_cached(s)
    return parse(s).text


@functools.lru_cache(maxsize=4096)
def _canonical_cached(s: str) -> str:
    return parse(s).text


def _parse(s) -> Quantity:
    if not isinstance(s, str):
        if isinstance(s, bool) or not isinstance(s, (int, float)):
            raise QuantityError(ERR_FORMAT_WRONG)
        s = repr(s) if isinstance(s, float) else str(s)
    s = s.strip()
    if not s:
        raise QuantityError(ERR_FORMAT_WRONG)
    if s == "0":
        return Quantity(Fraction(0), DECIMAL_SI, "0")
    positive, num, denom, suffix = _split(s)
    base, exp, fmt = _interpret(suffix)
    mantissa = Fraction(int(num + denom), 10 ** len(denom))
    value = mantissa * (Fraction(10) ** exp if base == 10 else Fraction(2) ** exp)
    if not positive:
        value = -value
    value = _round_up_nano(value)
    if fmt == BINARY_SI and value > _MAX_INT64:
        value = Fraction(_MAX_INT64)
    kept = s if _keeps_original(s, base, exp, num, denom) else None
    return Quantity(value, fmt, kept)


def parse_quantity(s) -> Fraction:
    """The exact value of a quantity string ("100m" -> 1/10); raises QuantityError."""
    return parse(s).value


def is_quantity(s) -> bool:
    try:
        parse(s)
    except QuantityError:
        return False
    return True


# ---- formatting ----------------------------------------------------------------------------

def _decimal_parts(v: Fraction) -> tuple[int, int]:
    """(mantissa, exponent) with v == m*10^e, trailing zeros removed, e a multiple of 3."""
    e = 0
    while v.denominator != 1:
        v *= 10
        e -= 1
    m = v.numerator
    while m != 0 and m % 10 == 0:
        m //= 10
        e += 1
    r = e % 3
    return m * 10 ** r, e - r


def _format_decimal(v: Fraction, fmt: str) -> str:
    # Values finer than a nanounit cannot be represented; round up like the parser.
    m, e = _decimal_parts(_round_up_nano(v))
    if fmt == DECIMAL_EXPONENT:
        return f"{m}" if e == 0 else f"{m}e{e}"
    suffix = _DEC_BY_EXP.get(e)
    return f"{m}{suffix}" if suffix is not None else f"{m}e{e}"


def _format_binary(v: Fraction) -> str:
    n, e = int(v), 0
    while n != 0 and n % 1024 == 0 and e < 60:
        n //= 1024
        e += 10
    return f"{n}{_BIN_BY_EXP.get(e, '')}"


def format_quantity(value, fmt: str = DECIMAL_SI) -> str:
    """Canonical string of a value in a format, as resource.Quantity.String() prints it."""
    v = Fraction(value)
    if v == 0:
        return "0"
    if fmt == BINARY_SI:
        if -1024 < v < 1024 or v.denominator != 1:
            return _format_decimal(v, DECIMAL_SI)
        return _format_binary(v)
    if fmt not in (DECIMAL_SI, DECIMAL_EXPONENT):
        fmt = DECIMAL_EXPONENT
    return _format_decimal(v, fmt)


def round_up(s, scale: int = -3) -> str:
    """Round a quantity up to 10^scale (SetDefaults_ResourceList uses milli) and print it."""
    if isinstance(s, str):
        return _round_up_cached(s, scale)
    return _round_up(s, scale)


@functools.lru_cache(maxsize=4096)
def _round_up_cached(s: str, scale: int) -> str:
    return _round_up(s, scale)


def _round_up(s, scale: int) -> str:
    q = parse(s)
    unit = Fraction(10) ** scale
    scaled = q.value / unit
    if scaled.denominator == 1:
        return q.text
    mag = math.ceil(abs(scaled))
    value = Fraction(mag if q.value > 0 else -mag) * unit
    return format_quantity(value, q.format)


# ---- arithmetic helpers --------------------------------------------------------------------

def milli_value(s) -> int:
    """Value in thousandths, rounded up (Quantity.MilliValue)."""
    v = parse_quantity(s) * 1000 if not isinstance(s, Fraction) else s * 1000
    return math.ceil(v)


def int_value(s) -> int:
    """Value rounded up to an integer (Quantity.Value)."""
    v = parse_quantity(s) if not isinstance(s, Fraction) else s
    return math.ceil(v)


def add(a: str, b: str) -> str:
    """Sum of two quantity strings, printed in the first operand's format."""
    qa, qb = parse(a), parse(b)
    return format_quantity(qa.value + qb.value, qa.format)
