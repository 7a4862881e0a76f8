"""The XPath that Voices maps: relevant expressions to conditions, constraints to bounds, range parameters."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from shared.questionnaire.definition import (
    MAX_RATING_POINTS,
    MULTIPLE_CHOICE,
    NUMBER,
    RATING,
    SINGLE_CHOICE,
)


class Unsupported(Exception):
    """A relevant expression or constraint outside the mapped forms; the message says why."""


# ---------------------------------------------------------------- relevant expressions

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<ref>\$\{\s*(?P<refname>[^}\s]+)\s*\})
    | (?P<str>'[^']*'|"[^"]*")
    | (?P<num>-?\d+(?:\.\d+)?)
    | (?P<op>!=|>=|<=|=|>|<)
    | (?P<lp>\() | (?P<rp>\)) | (?P<comma>,)
    | (?P<word>[A-Za-z_][A-Za-z0-9_-]*)
    )""",
    re.VERBOSE,
)
_FLIP = {">": "<", "<": ">", ">=": "<=", "<=": ">=", "=": "=", "!=": "!="}
_ORDER_OPS = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}


def _tokenise(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise Unsupported(f"cannot read the expression from {text[pos:].strip()!r}")
        kind = match.lastgroup if match.lastgroup != "refname" else "ref"
        if match.group("ref"):
            tokens.append(("ref", match.group("refname")))
        elif kind is not None:  # every alternative of _TOKEN is a named group
            tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


class RelevantParser:
    """Recursive descent over the small XPath subset Voices maps to conditions."""

    def __init__(self, text: str, lookup: Callable[[str], Any]) -> None:
        self.tokens = _tokenise(text)
        self.pos = 0
        self.lookup = lookup  # name -> earlier question dict, or raises Unsupported

    def parse(self) -> dict:
        if not self.tokens:
            raise Unsupported("empty expression")
        condition = self._or()
        if self.pos != len(self.tokens):
            raise Unsupported(f"unexpected {self.tokens[self.pos][1]!r}")
        return condition

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self, kind: str, value: str | None = None) -> str:
        token = self._peek()
        if token is None or token[0] != kind or (value is not None and token[1] != value):
            found = "the end" if token is None else repr(token[1])
            raise Unsupported(f"expected {value or kind} but found {found}")
        self.pos += 1
        return token[1]

    def _joined(self, word: str, part: Callable[[], dict], key: str) -> dict:
        parts = [part()]
        while self._peek() == ("word", word):
            self.pos += 1
            parts.append(part())
        if len(parts) == 1:
            return parts[0]
        flat: list[Any] = []
        for p in parts:  # (a and b) and c -> one "all"
            flat.extend(p[key] if set(p) == {key} else [p])
        return {key: flat}

    def _or(self) -> dict:
        return self._joined("or", self._and, "any")

    def _and(self) -> dict:
        return self._joined("and", self._unary, "all")

    def _unary(self) -> dict:
        token = self._peek()
        if token == ("word", "not"):
            self.pos += 1
            self._take("lp")
            inner = self._or()
            self._take("rp")
            return {"not": inner}
        if token == ("lp", "("):
            self.pos += 1
            inner = self._or()
            self._take("rp")
            return inner
        if token == ("word", "selected"):
            self.pos += 1
            self._take("lp")
            name = self._take("ref")
            self._take("comma")
            literal = self._literal()
            self._take("rp")
            return self._selected(name, literal)
        return self._comparison()

    def _literal(self) -> tuple[str, str]:
        token = self._peek()
        if token is None or token[0] not in ("str", "num"):
            raise Unsupported("expected a quoted value or a number")
        self.pos += 1
        return (token[0], token[1][1:-1] if token[0] == "str" else token[1])

    def _operand(self) -> tuple[str, ...]:
        token = self._peek()
        if token is not None and token[0] == "ref":
            self.pos += 1
            return token
        if token in (("word", "count-selected"), ("word", "string-length")):
            self.pos += 1
            self._take("lp")
            name = self._take("ref")
            self._take("rp")
            return ("count", name, token[1])
        if token is not None and token[0] == "word":
            raise Unsupported(f"function or name {token[1]!r} is not supported")
        return self._literal()

    def _comparison(self) -> dict:
        left = self._operand()
        op_token = self._peek()
        if op_token is None or op_token[0] != "op":
            raise Unsupported("expected a comparison such as ${q} = 'x'")
        self.pos += 1
        op = op_token[1]
        right = self._operand()
        if left[0] == "count" and right[0] == "num":
            return self._count(left, op, right[1])
        if right[0] == "count" and left[0] == "num":
            return self._count(right, _FLIP[op], left[1])
        if left[0] == "ref" and right[0] in ("str", "num"):
            return self._compare(left[1], op, right)
        if right[0] == "ref" and left[0] in ("str", "num"):
            return self._compare(right[1], _FLIP[op], left)
        raise Unsupported("a comparison needs one ${question} and one value")

    def _count(self, operand: tuple[str, ...], op: str, number: str) -> dict:
        """count-selected(${q}) or string-length(${q}) against a number: only 'answered' and 'not answered' map."""
        _, name, function = operand
        question = self.lookup(name)
        answered = {"question": question["id"], "op": "answered"}
        value = float(number)
        if (op, value) in ((">", 0), (">=", 1), ("!=", 0)):
            return answered
        if (op, value) in (("=", 0), ("<", 1), ("<=", 0)):
            return {"not": answered}
        raise Unsupported(
            f"Voices can tell only whether ${{{name}}} is answered: "
            f"write {function}(${{{name}}}) > 0 or {function}(${{{name}}}) = 0"
        )

    def _selected(self, name: str, literal: tuple[str, str]) -> dict:
        question = self.lookup(name)
        code = literal[1]
        if question["type"] not in (SINGLE_CHOICE, MULTIPLE_CHOICE):
            raise Unsupported(f"selected() needs a choice question, ${{{name}}} is not one")
        op = "includes" if question["type"] == MULTIPLE_CHOICE else "equals"
        return {"question": question["id"], "op": op, "value": _option_code(question, code)}

    def _compare(self, name: str, op: str, literal: tuple[str, ...]) -> dict:
        question = self.lookup(name)
        qid, qtype = question["id"], question["type"]
        if literal == ("str", ""):
            answered = {"question": qid, "op": "answered"}
            if op == "!=":
                return answered
            if op == "=":
                return {"not": answered}
            raise Unsupported(f"cannot compare ${{{name}}} {op} ''")

        def equality(value: Any) -> dict:
            equals = {"question": qid, "op": "equals", "value": value}
            # ODK's `!=` is true for an empty answer; not(equals) keeps that meaning.
            return equals if op == "=" else {"not": equals}

        if qtype == SINGLE_CHOICE:
            if op in _ORDER_OPS:
                return _numbered_choices(question, op, literal[1])
            return equality(_option_code(question, literal[1]))
        if qtype == MULTIPLE_CHOICE:
            raise Unsupported(
                f"use selected(${{{name}}}, 'code') for the multiple-choice question ${{{name}}}"
            )
        if qtype in (NUMBER, RATING):
            try:
                number = float(literal[1])
            except ValueError:
                raise Unsupported(f"${{{name}}} is a number, {literal[1]!r} is not") from None
            value: int | float = int(number) if number.is_integer() else number
            if op in ("=", "!="):
                return equality(value)
            return {"question": qid, "op": _ORDER_OPS[op], "value": value}
        raise Unsupported(f"${{{name}}} is a {qtype} question; only = '' and != '' apply to it")


def _numbered_choices(question: dict, op: str, bound: str) -> dict:
    """`${q} <= 2` on a single choice whose choice names are all numbers (a scale): any of the choices that match."""
    names = {
        option.get("__name", option["code"]): option["code"]
        for option in question.get("options") or []
    }
    if not all(re.fullmatch(_NUM, text) for text in (bound, *names)):
        raise Unsupported(
            f"{op} applies to the choice question ${{{question['id']}}} only when all its choice "
            "names and the value are numbers: compare with = instead"
        )
    limit, numbers = float(bound), {name: float(name) for name in names}
    compare = {">": float.__gt__, ">=": float.__ge__, "<": float.__lt__, "<=": float.__le__}[op]
    matching = [names[name] for name, number in numbers.items() if compare(number, limit)]
    if not matching:
        raise Unsupported(f"no choice of ${{{question['id']}}} is {op} {bound}: correct the value")
    equals = [{"question": question["id"], "op": "equals", "value": code} for code in matching]
    return equals[0] if len(equals) == 1 else {"any": equals}


def _option_code(question: dict, name: str) -> str:
    """The Voices code of the choice the spreadsheet calls `name` (options keep it as "__name")."""
    for option in question.get("options") or []:
        if option.get("__name", option["code"]) == name:
            return option["code"]
    raise Unsupported(
        f"{name!r} is not a choice of ${{{question['id']}}}: use a name from its list"
    )


# ---------------------------------------------------------------- constraints

_NUM = r"-?\d+(?:\.\d+)?"
_RE_BOUND_DOT_FIRST = re.compile(rf"^\.\s*(>=|<=|>|<)\s*({_NUM})$")
_RE_BOUND_DOT_LAST = re.compile(rf"^({_NUM})\s*(>=|<=|>|<)\s*\.$")
_RE_STRING_LENGTH = re.compile(r"^string-length\(\s*\.\s*\)\s*(<=|<)\s*(\d+)$")


def own_reference_as_dot(expression: str, name: str) -> str:
    """The expression with every `${name}` (the question's own name) written as `.`."""
    return re.sub(r"\$\{\s*" + re.escape(name) + r"\s*\}", ".", expression)


def number_bounds(constraint: str, integer: bool) -> tuple[float | int | None, float | int | None]:
    low: float | int | None = None
    high: float | int | None = None
    for clause in re.split(r"\s+and\s+", constraint.strip()):
        clause = clause.strip()
        if clause.startswith("(") and clause.endswith(")"):
            clause = clause[1:-1].strip()
        match = _RE_BOUND_DOT_FIRST.match(clause)
        if match:
            op, number = match.group(1), float(match.group(2))
        else:
            match = _RE_BOUND_DOT_LAST.match(clause)
            if not match:
                raise Unsupported(
                    "Voices keeps only bounds such as `. >= 0 and . <= 120`; "
                    "write it so to keep them, or delete the constraint"
                )
            number, op = float(match.group(1)), _FLIP[match.group(2)]
        if op in (">", "<") and not integer:
            raise Unsupported(
                "a strict bound (> or <) on a decimal cannot be kept; write >= or <= to keep it"
            )
        if op == ">=":
            bound, is_low = (math.ceil(number) if integer else number), True
        elif op == ">":
            bound, is_low = math.floor(number) + 1, True
        elif op == "<=":
            bound, is_low = (math.floor(number) if integer else number), False
        else:
            bound, is_low = math.ceil(number) - 1, False
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)
        if is_low:
            low = bound if low is None else max(low, bound)
        else:
            high = bound if high is None else min(high, bound)
    return low, high


def text_max_length(constraint: str) -> int:
    match = _RE_STRING_LENGTH.match(constraint.strip())
    if not match:
        raise Unsupported(
            "Voices keeps only a length limit on text, `string-length(.) <= n`; "
            "write it so to keep one, or delete the constraint"
        )
    limit = int(match.group(2))
    return limit if match.group(1) == "<=" else limit - 1


def range_scale(raw: Any) -> tuple[int, int]:
    params = {"start": "1", "end": "10", "step": "1"}  # ODK's defaults
    if raw:
        for part in re.split(r"[\s;,]+", str(raw).strip()):
            if not part:
                continue
            key, sep, value = part.partition("=")
            if not sep or key.strip().lower() not in params:
                raise Unsupported(
                    f"range parameter {part!r} is not supported: write only start, end and step, "
                    "e.g. 'start=1 end=5 step=1'"
                )
            params[key.strip().lower()] = value.strip()
    try:
        start, end, step = (float(params[k]) for k in ("start", "end", "step"))
    except ValueError:
        raise Unsupported(
            "range start, end and step must be numbers: write e.g. 'start=1 end=5 step=1'"
        ) from None
    if step != 1 or not start.is_integer() or not end.is_integer():
        raise Unsupported(
            "a range becomes a rating only with whole-number start and end and step=1: "
            "change the parameters, or use integer for other numbers"
        )
    if not start < end or end - start + 1 > MAX_RATING_POINTS:
        raise Unsupported(
            f"a rating runs upwards over at most {MAX_RATING_POINTS} points: change start and end, "
            "or use integer with a constraint for a wider scale"
        )
    return int(start), int(end)
