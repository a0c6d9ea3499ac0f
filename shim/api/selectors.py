"""Label and field selectors: parsing (with the real error texts) and matching.

Label selectors follow k8s.io/apimachinery/pkg/labels: comma = AND; `k=v`, `k==v`,
`k!=v`, `k in (a,b)`, `k notin (a,b)`, `k` (exists), `!k` (does not exist),
`k>N`, `k<N`. Field selectors follow pkg/fields: `=`, `==`, `!=` with `\\,` `\\=`
`\\\\` escapes; which fields a kind supports is the strategy's business.
"""
from __future__ import annotations

import re
from typing import Callable

from .errors import bad_request

_KEY_RE = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                     r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

Requirement = tuple[str, str, tuple[str, ...]]   # key, op, values
LabelMatcher = Callable[[dict], bool]


class _Lexer:
    def __init__(self, s: str):
        self.s = s
        self.i = 0

    def skip_ws(self):
        while self.i < len(self.s) and self.s[self.i].isspace():
            self.i += 1

    def peek(self) -> str:
        self.skip_ws()
        return self.s[self.i] if self.i < len(self.s) else ""

    def ident(self) -> str:
        self.skip_ws()
        j = self.i
        while j < len(self.s) and self.s[j] not in " \t\n,()=!<>":
            j += 1
        tok = self.s[self.i:j]
        self.i = j
        return tok

    def op(self) -> str:
        self.skip_ws()
        for o in ("==", "!=", "=", ">", "<"):
            if self.s.startswith(o, self.i):
                self.i += len(o)
                return o
        word = self.ident()
        return word


def _err(selector: str, msg: str):
    return bad_request(f"unable to parse requirement: {msg}") if selector is not None else None


def parse_label_selector(selector: str) -> list[Requirement]:
    """Parse a label selector; errors are 400 BadRequest like the real server's."""
    reqs: list[Requirement] = []
    if not selector or not selector.strip():
        return reqs
    lx = _Lexer(selector)
    while True:
        neg = False
        if lx.peek() == "!":
            lx.i += 1
            neg = True
        key = lx.ident()
        if not key:
            raise bad_request(f"unable to parse requirement: found '{lx.peek() or 'EOS'}', "
                              f"expected: identifier")
        _check_key(key)
        nxt = lx.peek()
        if neg:
            reqs.append((key, "!", ()))
        elif nxt in ("", ","):
            reqs.append((key, "exists", ()))
        else:
            op = lx.op()
            if op in ("in", "notin"):
                if lx.peek() != "(":
                    raise bad_request(f"unable to parse requirement: found '{lx.peek() or 'EOS'}', "
                                      "expected: '('")
                lx.i += 1
                vals: list[str] = []
                while True:
                    if lx.peek() == ")":
                        lx.i += 1
                        break
                    v = lx.ident()
                    _check_value(key, v)
                    vals.append(v)
                    c = lx.peek()
                    if c == ",":
                        lx.i += 1
                    elif c == ")":
                        lx.i += 1
                        break
                    else:
                        raise bad_request(f"unable to parse requirement: found '{c or 'EOS'}', "
                                          "expected: ',', or ')'")
                reqs.append((key, op, tuple(vals)))
            elif op in ("=", "==", "!="):
                v = lx.ident()
                _check_value(key, v)
                reqs.append((key, "!=" if op == "!=" else "=", (v,)))
            elif op in (">", "<"):
                v = lx.ident()
                try:
                    int(v)
                except ValueError:
                    raise bad_request("unable to parse requirement: for 'Gt', 'Lt' operators, "
                                      f"the value must be an integer") from None
                reqs.append((key, op, (v,)))
            else:
                raise bad_request(f"unable to parse requirement: found '{op}', expected: "
                                  "in, notin, =, ==, !=, gt, lt")
        c = lx.peek()
        if c == "":
            break
        if c != ",":
            raise bad_request(f"unable to parse requirement: found '{c}', expected: ',' or 'end of string'")
        lx.i += 1
    return reqs


def _check_key(key: str) -> None:
    name = key.rsplit("/", 1)[-1]
    if len(name) > 63 or not _KEY_RE.match(key):
        raise bad_request(
            f'unable to parse requirement: <nil>: Invalid value: "{key}": name part must consist of '
            "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
            "character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
            "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")


def _check_value(key: str, v: str) -> None:
    if len(v) > 63 or not _VALUE_RE.match(v):
        raise bad_request(
            f'unable to parse requirement: values[0][{key}]: Invalid value: "{v}": a valid label must '
            "be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start "
            "and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex "
            "used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")


def label_matcher(reqs: list[Requirement]) -> LabelMatcher | None:
    if not reqs:
        return None

    def match(labels: dict) -> bool:
        for key, op, vals in reqs:
            has = key in labels
            v = labels.get(key)
            if op == "=":
                if not has or v != vals[0]:
                    return False
            elif op == "!=":
                if has and v == vals[0]:
                    return False
            elif op == "in":
                if not has or v not in vals:
                    return False
            elif op == "notin":
                if has and v in vals:
                    return False
            elif op == "exists":
                if not has:
                    return False
            elif op == "!":
                if has:
                    return False
            elif op in (">", "<"):
                if not has:
                    return False
                try:
                    n = int(v)
                except ValueError:
                    return False
                if (op == ">" and not n > int(vals[0])) or (op == "<" and not n < int(vals[0])):
                    return False
        return True
    return match


def selector_from_map(sel: dict) -> LabelMatcher:
    """An equality selector from a map (RC selectors, service selectors)."""
    items = tuple(sel.items())
    return lambda labels: all(labels.get(k) == v for k, v in items)


def format_map_selector(sel: dict | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((sel or {}).items()))


# ---- field selectors --------------------------------------------------------------------------

def parse_field_selector(selector: str) -> list[tuple[str, str, str]]:
    """`a=b,c!=d` -> [(field, op, value)]; op is '=' or '!='."""
    out = []
    if not selector:
        return out
    parts: list[str] = []
    cur = []
    i = 0
    while i < len(selector):
        ch = selector[i]
        if ch == "\\" and i + 1 < len(selector):
            cur.append(selector[i:i + 2])
            i += 2
            continue
        if ch == ",":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    for p in parts:
        if not p:
            continue
        m = re.match(r"^((?:[^=!\\]|\\.)*?)(==|!=|=)(.*)$", p)
        if not m:
            raise bad_request(f"invalid selector: '{selector}'; can't understand '{p}'")
        field, op, value = m.group(1), m.group(2), m.group(3)
        value = re.sub(r"\\(.)", r"\1", value)
        out.append((field.strip(), "!=" if op == "!=" else "=", value))
    return out
