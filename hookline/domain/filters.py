"""Content filters: EventBridge event patterns over the delivered payload.

A filter is a JSON object shaped like the payload. Each field names either a nested pattern (an
object) or a non-empty array of matchers, and the field matches when any matcher matches any of
its values (an array in the payload contributes each of its elements). All fields must match;
``"$or": [pattern, ...]`` matches when one of its patterns does. Matchers:

- a string, number, boolean or null: that exact value (numbers by value, types never mix);
- ``{"prefix": s}``, ``{"suffix": s}`` (also ``{"prefix": {"equals-ignore-case": s}}``);
- ``{"equals-ignore-case": s}``;
- ``{"anything-but": v}`` with a value, a list of values, or ``{"prefix"|"suffix": s}`` or
  ``{"equals-ignore-case": s | [s, ...]}``;
- ``{"numeric": [op, n]}`` or ``{"numeric": [">" | ">=", low, "<" | "<=", high]}``;
- ``{"exists": true | false}``: whether the field has a value (objects are not values).

``validate`` checks a filter once, on write; ``explain`` says why a payload does not match, and
``matches`` is its short-circuiting yes/no; ``passes`` is the dispatcher's check after the type.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from hookline.domain.models import Event, Webhook
from hookline.domain.payload import payload_of

MAX_FILTER_BYTES = 4096
MAX_FILTER_DEPTH = 6
MAX_NUMBER = 5e9
OR = "$or"
_LOWER_BOUNDS = frozenset({">", ">="})
_UPPER_BOUNDS = frozenset({"<", "<="})
_COMPARE = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "=": lambda a, b: a == b,
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
}
_OPERATORS = ("prefix", "suffix", "equals-ignore-case", "anything-but", "numeric", "exists")

Pattern = Mapping[str, Any]


class FilterError(ValueError):
    """A filter that is not a valid pattern; ``where`` names the bad part (``data.slug[0]``)."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}" if where else problem)
        self.where = where
        self.problem = problem


# --- validation ----------------------------------------------------------------------------


def validate(pattern: Any) -> dict[str, Any]:
    """The filter as given, once it is a valid pattern within the size and depth caps."""
    try:
        size = len(json.dumps(pattern, separators=(",", ":"), allow_nan=False).encode())
    except (TypeError, ValueError) as exc:
        raise FilterError("", "must be JSON with finite numbers") from exc
    if size > MAX_FILTER_BYTES:
        raise FilterError("", f"is {size} bytes as compact JSON; the limit is {MAX_FILTER_BYTES}")
    _check_pattern(pattern, "", 1)
    return dict(pattern)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _check_pattern(pattern: Any, path: str, depth: int) -> None:
    if not isinstance(pattern, dict):
        raise FilterError(path, "must be an object")
    if not pattern:
        raise FilterError(path, "must name at least one field")
    if depth > MAX_FILTER_DEPTH:
        raise FilterError(path, f"nests deeper than {MAX_FILTER_DEPTH} levels")
    for key, value in pattern.items():
        where = _join(path, key)
        if key == OR:
            _check_or(value, where, depth)
        elif not key or key.startswith("$"):
            raise FilterError(where, "is not a field name (only $or may start with $)")
        elif isinstance(value, dict):
            _check_pattern(value, where, depth + 1)
        elif isinstance(value, list):
            if not value:
                raise FilterError(where, "must list at least one value or matcher")
            for i, matcher in enumerate(value):
                _check_matcher(matcher, f"{where}[{i}]")
        else:
            raise FilterError(where, "must be an object (a nested pattern) or an array of matchers")


def _check_or(branches: Any, where: str, depth: int) -> None:
    if not isinstance(branches, list) or len(branches) < 2:
        raise FilterError(where, "must be an array of at least two patterns")
    for i, branch in enumerate(branches):
        _check_pattern(branch, f"{where}[{i}]", depth + 1)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_number(value: Any, where: str) -> None:
    if not _is_number(value) or not math.isfinite(value) or abs(value) > MAX_NUMBER:
        raise FilterError(where, f"must be a number between -{MAX_NUMBER:g} and {MAX_NUMBER:g}")


def _check_matcher(matcher: Any, where: str) -> None:
    if matcher is None or isinstance(matcher, str | bool):
        return
    if _is_number(matcher):
        _check_number(matcher, where)
        return
    if not isinstance(matcher, dict):
        raise FilterError(where, "must be a value (string, number, boolean, null) or a matcher")
    if len(matcher) != 1:
        raise FilterError(where, "a matcher object holds exactly one of " + ", ".join(_OPERATORS))
    ((operator, argument),) = matcher.items()
    where = f"{where}.{operator}"
    if operator in ("prefix", "suffix"):
        _check_affix(argument, where)
    elif operator == "equals-ignore-case":
        _check_string(argument, where)
    elif operator == "anything-but":
        _check_anything_but(argument, where)
    elif operator == "numeric":
        _check_numeric(argument, where)
    elif operator == "exists":
        if not isinstance(argument, bool):
            raise FilterError(where, "must be true or false")
    else:
        raise FilterError(where, "is not a supported matcher; use one of " + ", ".join(_OPERATORS))


def _check_string(argument: Any, where: str) -> None:
    if not isinstance(argument, str):
        raise FilterError(where, "must be a string")


def _check_affix(argument: Any, where: str) -> None:
    if isinstance(argument, dict):
        if list(argument) != ["equals-ignore-case"]:
            raise FilterError(where, 'takes a string or {"equals-ignore-case": string}')
        _check_string(argument["equals-ignore-case"], f"{where}.equals-ignore-case")
    else:
        _check_string(argument, where)


def _check_anything_but(argument: Any, where: str) -> None:
    if isinstance(argument, str):
        return
    if _is_number(argument):
        _check_number(argument, where)
        return
    if isinstance(argument, list):
        if not argument:
            raise FilterError(where, "must list at least one value")
        kinds = {"string" if isinstance(v, str) else "number" for v in argument}
        for i, value in enumerate(argument):
            if not isinstance(value, str):
                _check_number(value, f"{where}[{i}]")
        if len(kinds) > 1:
            raise FilterError(where, "must list only strings or only numbers")
        return
    if isinstance(argument, dict) and len(argument) == 1:
        ((operator, inner),) = argument.items()
        if operator in ("prefix", "suffix"):
            _check_string(inner, f"{where}.{operator}")
            return
        if operator == "equals-ignore-case":
            values = inner if isinstance(inner, list) and inner else [inner]
            for value in values:
                _check_string(value, f"{where}.{operator}")
            return
    raise FilterError(
        where,
        "takes a string, a number, a list of them, or one of prefix, suffix, equals-ignore-case",
    )


def _check_numeric(argument: Any, where: str) -> None:
    if not isinstance(argument, list) or len(argument) not in (2, 4):
        raise FilterError(where, 'must be [op, number] or [">"|">=", low, "<"|"<=", high]')
    for i in range(0, len(argument), 2):
        if argument[i] not in _COMPARE:
            raise FilterError(f"{where}[{i}]", "must be one of <, <=, =, >=, >")
        _check_number(argument[i + 1], f"{where}[{i + 1}]")
    if len(argument) == 4:
        if argument[0] not in _LOWER_BOUNDS or argument[2] not in _UPPER_BOUNDS:
            raise FilterError(where, "a range is a lower bound (> or >=) then an upper (< or <=)")
        if argument[1] >= argument[3]:
            raise FilterError(where, "the lower bound must be below the upper bound")


def passes(webhook: Webhook, event: Event) -> bool:
    """Does the payload of an event of a type this webhook subscribes to pass its filter?"""
    return webhook.filter is None or matches(webhook.filter, payload_of(event))


# --- matching --------------------------------------------------------------------------------


def matches(pattern: Pattern | None, payload: Any) -> bool:
    """Does the payload match the filter? No filter matches everything."""
    return pattern is None or not _mismatches(pattern, [payload], "", stop_early=True)


def explain(pattern: Pattern | None, payload: Any) -> list[str]:
    """Why the payload does not match the filter, one line per failing part (empty: it matches)."""
    return [] if pattern is None else _mismatches(pattern, [payload], "", stop_early=False)


def _mismatches(pattern: Pattern, nodes: list[Any], path: str, *, stop_early: bool) -> list[str]:
    reasons: list[str] = []
    for key, spec in pattern.items():
        if key == OR:
            branch_reasons = []
            for branch in spec:
                found = _mismatches(branch, nodes, path, stop_early=stop_early)
                if not found:
                    break
                branch_reasons.append("; ".join(found))
            else:
                reasons.append(
                    f"{path or 'payload'}: no $or branch matches ("
                    + " | ".join(branch_reasons)
                    + ")"
                )
        else:
            where = _join(path, key)
            values = _field(nodes, key)
            if isinstance(spec, dict):
                reasons += _mismatches(spec, values, where, stop_early=stop_early)
            else:
                leaves = [v for v in values if not isinstance(v, dict)]
                if not any(_matcher_matches(m, leaves) for m in spec):
                    reasons.append(_describe(where, leaves, spec))
        if reasons and stop_early:
            return reasons
    return reasons


def _field(nodes: list[Any], key: str) -> list[Any]:
    """The values of ``key`` in these nodes; arrays (of objects or of values) are flattened."""
    values: list[Any] = []
    for node in nodes:
        if isinstance(node, list):
            values += _field(node, key)
        elif isinstance(node, dict) and key in node:
            _flatten(node[key], values)
    return values


def _flatten(value: Any, into: list[Any]) -> None:
    if isinstance(value, list):
        for element in value:
            _flatten(element, into)
    else:
        into.append(value)


def _matcher_matches(matcher: Any, leaves: list[Any]) -> bool:
    if isinstance(matcher, dict):
        ((operator, argument),) = matcher.items()
        if operator == "exists":
            return bool(leaves) == argument
        return any(_operator_matches(operator, argument, leaf) for leaf in leaves)
    return any(_same(matcher, leaf) for leaf in leaves)


def _same(expected: Any, value: Any) -> bool:
    if isinstance(expected, bool) or isinstance(value, bool):
        return isinstance(expected, bool) and isinstance(value, bool) and expected == value
    if _is_number(expected):
        return _is_number(value) and expected == value
    return type(expected) is type(value) and expected == value


def _operator_matches(operator: str, argument: Any, value: Any) -> bool:
    if operator == "prefix" or operator == "suffix":
        if not isinstance(value, str):
            return False
        if isinstance(argument, dict):
            value, argument = value.lower(), argument["equals-ignore-case"].lower()
        return value.startswith(argument) if operator == "prefix" else value.endswith(argument)
    if operator == "equals-ignore-case":
        return isinstance(value, str) and value.lower() == argument.lower()
    if operator == "numeric":
        return _is_number(value) and all(
            _COMPARE[argument[i]](value, argument[i + 1]) for i in range(0, len(argument), 2)
        )
    # anything-but
    if isinstance(argument, list):
        return not any(_same(excluded, value) for excluded in argument)
    if isinstance(argument, dict):
        ((inner, inner_argument),) = argument.items()
        if inner == "equals-ignore-case" and isinstance(inner_argument, list):
            return not any(_operator_matches(inner, each, value) for each in inner_argument)
        return not _operator_matches(inner, inner_argument, value)
    return not _same(argument, value)


def _describe(where: str, leaves: list[Any], spec: list[Any]) -> str:
    wanted = json.dumps(spec, separators=(", ", ": "))
    if not leaves:
        return f"{where}: missing, wanted {wanted}"
    shown = json.dumps(leaves[0] if len(leaves) == 1 else leaves)
    if len(shown) > 200:
        shown = shown[:197] + "..."
    return f"{where}: {shown} does not match {wanted}"
