"""A small Amazon States Language interpreter: enough of ASL to run statemachine/retry.asl.json
itself (not a re-statement of it), so the local retry timer follows whatever the real state
machine does.

Supported: Pass, Task (lambda:invoke and plain Lambda ARNs), Choice, Wait, Succeed, Fail;
InputPath/Parameters/ResultSelector/ResultPath/OutputPath; Retry/Catch; JSONPath `$.a.b[0]`
and the context object `$$.`; the intrinsics used by workflows like ours (States.MathAdd,
ArrayLength, ArrayGetItem, Array, Format, StringToJson, JsonToString, UUID). Anything else is
refused when the definition is loaded, so a new construct fails loudly instead of running wrong.

The interpreter is pure: `step()` runs states until the execution must wait (a Wait state or a
Retry interval) or ends; the caller owns the clock.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Invokes a Lambda function by name with a payload; raises TaskError when it fails.
Invoker = Callable[[str, Any], Any]

_MISSING = object()  # a path that does not resolve
_REQUIRED = object()  # get_path's default: raise when the path does not resolve


class TaskError(Exception):
    """A task failed with an ASL error name (e.g. the function's exception type) and cause."""

    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause


class RuntimeFailure(TaskError):
    """States.Runtime: a path that does not resolve, a bad intrinsic... never caught or retried."""

    def __init__(self, cause: str) -> None:
        super().__init__("States.Runtime", cause)


class UnsupportedDefinition(ValueError):
    pass


# --------------------------------------------------------------------------------------------
# JSONPath (the reference-path subset ASL allows in Parameters and Choice rules)

_PATH_TOKEN = re.compile(r"\.([A-Za-z0-9_\-]+)|\[(\d+)\]|\['([^']*)'\]")


def _path_parts(path: str) -> tuple[str, list[str | int]]:
    root = "$$" if path.startswith("$$") else "$"
    rest = path[len(root) :]
    parts: list[str | int] = []
    pos = 0
    while pos < len(rest):
        m = _PATH_TOKEN.match(rest, pos)
        if not m:
            raise RuntimeFailure(f"unsupported JSONPath {path!r}")
        if m.group(1) is not None:
            parts.append(m.group(1))
        elif m.group(2) is not None:
            parts.append(int(m.group(2)))
        else:
            parts.append(m.group(3))
        pos = m.end()
    return root, parts


def get_path(document: Any, path: str, context: Any = None, default: Any = _REQUIRED) -> Any:
    root, parts = _path_parts(path)
    node = context if root == "$$" else document
    for part in parts:
        in_list = isinstance(part, int) and isinstance(node, list) and 0 <= part < len(node)
        in_dict = isinstance(part, str) and isinstance(node, dict) and part in node
        if in_list or in_dict:
            node = node[part]  # type: ignore[index]
        else:
            if default is not _REQUIRED:
                return default
            raise RuntimeFailure(f"the JSONPath {path!r} could not be found in the input")
    return node


def set_path(document: Any, path: str | None, value: Any) -> Any:
    """ResultPath: null discards the result, "$" replaces the input, "$.a.b" merges into it."""
    if path is None:
        return document
    root, parts = _path_parts(path)
    if root != "$":
        raise RuntimeFailure(f"ResultPath {path!r} must start with $")
    if not parts:
        return value
    result = copy.deepcopy(document) if isinstance(document, dict) else {}
    node = result
    for part in parts[:-1]:
        if not isinstance(part, str):
            raise RuntimeFailure(f"ResultPath {path!r} cannot index arrays")
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    last = parts[-1]
    if not isinstance(last, str):
        raise RuntimeFailure(f"ResultPath {path!r} cannot index arrays")
    node[last] = value
    return result


# --------------------------------------------------------------------------------------------
# Intrinsic functions

_INTRINSIC_TOKEN = re.compile(
    r"\s*(?:(?P<call>States\.[A-Za-z]+)\(|(?P<close>\))|(?P<comma>,)"
    r"|(?P<str>'(?:[^'\\]|\\.)*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<path>\$\$?[^,()\s]*)"
    r"|(?P<lit>null|true|false))"
)


def _intrinsic(name: str, args: list[Any]) -> Any:
    def need(count: int) -> None:
        if len(args) != count:
            raise RuntimeFailure(f"{name} takes {count} arguments, got {len(args)}")

    if name == "States.MathAdd":
        need(2)
        if not all(isinstance(a, int | float) and not isinstance(a, bool) for a in args):
            raise RuntimeFailure(f"States.MathAdd needs numbers, got {args!r}")
        return args[0] + args[1]
    if name == "States.ArrayLength":
        need(1)
        if not isinstance(args[0], list):
            raise RuntimeFailure("States.ArrayLength needs an array")
        return len(args[0])
    if name == "States.ArrayGetItem":
        need(2)
        array, index = args
        if not isinstance(array, list) or not isinstance(index, int) or isinstance(index, bool):
            raise RuntimeFailure("States.ArrayGetItem needs an array and an integer")
        if not 0 <= index < len(array):
            raise RuntimeFailure(f"States.ArrayGetItem index {index} is out of bounds")
        return array[index]
    if name == "States.Array":
        return list(args)
    if name == "States.Format":
        if not args or not isinstance(args[0], str):
            raise RuntimeFailure("States.Format needs a template string")
        template, values = args[0], list(args[1:])
        if template.count("{}") != len(values):
            raise RuntimeFailure("States.Format argument count does not match its template")
        out = template
        for value in values:
            text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
            out = out.replace("{}", text, 1)
        return out
    if name == "States.StringToJson":
        need(1)
        try:
            return json.loads(args[0])
        except (TypeError, ValueError) as exc:
            raise RuntimeFailure(f"States.StringToJson: {exc}") from exc
    if name == "States.JsonToString":
        need(1)
        return json.dumps(args[0], separators=(",", ":"))
    if name == "States.UUID":
        need(0)
        return str(uuid.uuid4())
    raise UnsupportedDefinition(f"intrinsic {name} is not supported by the local interpreter")


def evaluate_intrinsic(expression: str, document: Any, context: Any) -> Any:
    """Evaluate e.g. "States.MathAdd(States.ArrayLength($.schedule), 1)"."""
    tokens = []
    pos = 0
    text = expression.strip()
    while pos < len(text):
        m = _INTRINSIC_TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise UnsupportedDefinition(f"cannot parse intrinsic {expression!r}")
        tokens.append(m)
        pos = m.end()

    def parse(i: int) -> tuple[Any, int]:
        token = tokens[i]
        if token.group("call"):
            name = token.group("call")
            args: list[Any] = []
            i += 1
            if tokens[i].group("close"):
                return _intrinsic(name, args), i + 1
            while True:
                value, i = parse(i)
                args.append(value)
                if tokens[i].group("comma"):
                    i += 1
                    continue
                if tokens[i].group("close"):
                    return _intrinsic(name, args), i + 1
                raise UnsupportedDefinition(f"cannot parse intrinsic {expression!r}")
        if token.group("str") is not None:
            raw = token.group("str")[1:-1]
            return re.sub(r"\\(.)", r"\1", raw), i + 1
        if token.group("num") is not None:
            num = token.group("num")
            return (float(num) if "." in num else int(num)), i + 1
        if token.group("path") is not None:
            return get_path(document, token.group("path"), context), i + 1
        if token.group("lit") is not None:
            return {"null": None, "true": True, "false": False}[token.group("lit")], i + 1
        raise UnsupportedDefinition(f"cannot parse intrinsic {expression!r}")

    try:
        value, end = parse(0)
    except IndexError as exc:
        raise UnsupportedDefinition(f"cannot parse intrinsic {expression!r}") from exc
    if end != len(tokens):
        raise UnsupportedDefinition(f"cannot parse intrinsic {expression!r}")
    return value


def render(template: Any, document: Any, context: Any) -> Any:
    """A payload template (Parameters / ResultSelector): keys ending in ".$" are paths or
    intrinsics evaluated against the document."""
    if isinstance(template, dict):
        out: dict[str, Any] = {}
        for key, value in template.items():
            if key.endswith(".$") and isinstance(value, str):
                if value.startswith("States."):
                    out[key[:-2]] = evaluate_intrinsic(value, document, context)
                else:
                    out[key[:-2]] = copy.deepcopy(get_path(document, value, context))
            else:
                out[key] = render(value, document, context)
        return out
    if isinstance(template, list):
        return [render(item, document, context) for item in template]
    return copy.deepcopy(template)


# --------------------------------------------------------------------------------------------
# Choice rules

_COMPARATORS: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": lambda a, b: a == b,
    "LessThan": lambda a, b: a < b,
    "GreaterThan": lambda a, b: a > b,
    "LessThanEquals": lambda a, b: a <= b,
    "GreaterThanEquals": lambda a, b: a >= b,
}
_TYPES: dict[str, tuple[type, ...]] = {
    "String": (str,),
    "Numeric": (int, float),
    "Boolean": (bool,),
    "Timestamp": (str,),
}


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "Numeric" and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[kind])


def rule_matches(rule: dict[str, Any], document: Any, context: Any) -> bool:
    if "And" in rule:
        return all(rule_matches(r, document, context) for r in rule["And"])
    if "Or" in rule:
        return any(rule_matches(r, document, context) for r in rule["Or"])
    if "Not" in rule:
        return not rule_matches(rule["Not"], document, context)
    variable = rule.get("Variable")
    if not isinstance(variable, str):
        raise UnsupportedDefinition(f"choice rule without Variable: {rule!r}")
    value = get_path(document, variable, context, default=_MISSING)
    for key, expected in rule.items():
        if key in ("Variable", "Next"):
            continue
        if key == "IsPresent":
            return (value is not _MISSING) == bool(expected)
        if value is _MISSING:
            # Comparing a missing variable is a runtime error in Step Functions.
            raise RuntimeFailure(f"invalid path {variable!r}: the choice state's condition path")
        if key == "IsNull":
            return (value is None) == bool(expected)
        if key == "IsNumeric":
            return _type_ok("Numeric", value) == bool(expected)
        if key == "IsString":
            return isinstance(value, str) == bool(expected)
        if key == "IsBoolean":
            return isinstance(value, bool) == bool(expected)
        if key == "StringMatches":
            pattern = re.escape(str(expected)).replace(r"\*", ".*")
            return isinstance(value, str) and re.fullmatch(pattern, value) is not None
        for kind in _TYPES:
            if not key.startswith(kind):
                continue
            op = key[len(kind) :]
            if op.endswith("Path"):
                op = op[: -len("Path")]
                expected = get_path(document, str(expected), context)
            if op not in _COMPARATORS:
                break
            if not _type_ok(kind, value) or not _type_ok(kind, expected):
                return False
            return _COMPARATORS[op](value, expected)
        raise UnsupportedDefinition(f"choice operator {key} is not supported")
    raise UnsupportedDefinition(f"choice rule without a comparison: {rule!r}")


# --------------------------------------------------------------------------------------------
# Executions

_SUPPORTED_TYPES = {"Pass", "Task", "Choice", "Wait", "Succeed", "Fail"}
_LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"


def validate(definition: dict[str, Any]) -> None:
    """Refuse definitions using constructs this interpreter does not run."""
    states = definition.get("States")
    if not isinstance(states, dict) or definition.get("StartAt") not in states:
        raise UnsupportedDefinition("definition needs States and a valid StartAt")
    for name, state in states.items():
        kind = state.get("Type")
        if kind not in _SUPPORTED_TYPES:
            raise UnsupportedDefinition(f"state {name}: type {kind} is not supported")
        if kind == "Task":
            resource = str(state.get("Resource", ""))
            if resource != _LAMBDA_INVOKE and ":lambda:" not in resource:
                raise UnsupportedDefinition(f"state {name}: resource {resource} not supported")
        for key in ("Next", "Default"):
            if key in state and state[key] not in states:
                raise UnsupportedDefinition(f"state {name}: {key} {state[key]} does not exist")
        for choice in state.get("Choices", []):
            if choice.get("Next") not in states:
                raise UnsupportedDefinition(f"state {name}: choice leads nowhere")
        for catcher in state.get("Catch", []):
            if catcher.get("Next") not in states:
                raise UnsupportedDefinition(f"state {name}: catch leads nowhere")


def error_matches(names: list[str], error: str) -> bool:
    if error == "States.Runtime":
        return False
    return any(
        n == error or n == "States.ALL" or (n == "States.TaskFailed" and error != "States.Timeout")
        for n in names
    )


@dataclass
class Execution:
    """One run of the state machine. `status` is RUNNING, SUCCEEDED or FAILED."""

    name: str
    input: Any
    state: str
    document: Any
    status: str = "RUNNING"
    error: str | None = None
    cause: str | None = None
    output: Any = None
    history: list[str] = field(default_factory=list)
    #: Retry attempts made per (state name, retrier index) while in the current state.
    retries: dict[tuple[str, int], int] = field(default_factory=dict)
    #: Set while a Wait or retry interval is pending: "wait" resumes after the wait;
    #: "retry" re-runs the current task state.
    resume: str | None = None


@dataclass(frozen=True)
class Pause:
    """The execution must sleep `seconds` (unscaled) before step() is called again."""

    seconds: float


class StateMachine:
    """A loaded definition. `functions` maps definition substitutions (e.g. AttemptFunctionArn)
    or function ARNs/names to the local function name the invoker understands."""

    def __init__(
        self,
        definition: dict[str, Any],
        invoker: Invoker,
        *,
        substitutions: dict[str, str] | None = None,
        arn: str = "arn:aws:states:us-east-1:123456789012:stateMachine:local",
    ) -> None:
        validate(definition)
        self.definition = definition
        self.invoker = invoker
        self.substitutions = substitutions or {}
        self.arn = arn

    @property
    def states(self) -> dict[str, Any]:
        states: dict[str, Any] = self.definition["States"]
        return states

    def start(self, name: str, input_document: Any) -> Execution:
        return Execution(
            name=name,
            input=copy.deepcopy(input_document),
            state=self.definition["StartAt"],
            document=copy.deepcopy(input_document),
        )

    def _context(self, execution: Execution) -> dict[str, Any]:
        return {
            "Execution": {
                "Id": f"{self.arn.replace(':stateMachine:', ':execution:')}:{execution.name}",
                "Name": execution.name,
                "Input": execution.input,
            },
            "StateMachine": {"Id": self.arn},
            "State": {"Name": execution.state},
        }

    def _function_name(self, raw: Any) -> str:
        text = str(raw)
        m = re.fullmatch(r"\$\{(\w+)\}", text)
        if m:
            return self.substitutions.get(m.group(1), m.group(1))
        return self.substitutions.get(text, text.rsplit(":", 1)[-1])

    def step(self, execution: Execution) -> Pause | None:
        """Run states until the execution pauses (returns Pause) or ends (returns None)."""
        while execution.status == "RUNNING":
            state = self.states[execution.state]
            try:
                if execution.resume == "wait":
                    execution.resume = None
                    pause = None
                else:
                    pause = self._enter(execution, state)
            except RuntimeFailure as exc:
                self._fail(execution, exc.error, exc.cause)
                return None
            if pause is not None:
                return pause
        return None

    def _fail(self, execution: Execution, error: str, cause: str) -> None:
        execution.status, execution.error, execution.cause = "FAILED", error, cause

    def _advance(self, execution: Execution, state: dict[str, Any], output: Any) -> None:
        if state.get("End") or "Next" not in state:
            execution.status, execution.output = "SUCCEEDED", output
            execution.document = output
            return
        execution.state = state["Next"]
        execution.document = output
        execution.retries.clear()

    def _enter(self, execution: Execution, state: dict[str, Any]) -> Pause | None:
        """Run the current state. Returns a Pause when it must wait before continuing."""
        kind = state["Type"]
        if execution.resume != "retry":
            execution.history.append(execution.state)
        execution.resume = None
        ctx = self._context(execution)
        raw = execution.document
        effective = get_path(raw, state["InputPath"], ctx) if state.get("InputPath") else raw
        if state.get("InputPath", "$") is None:
            effective = {}
        if kind == "Succeed":
            out = self._output(state, effective, ctx)
            execution.status, execution.output, execution.document = "SUCCEEDED", out, out
            return None
        if kind == "Fail":
            self._fail(execution, str(state.get("Error", "")), str(state.get("Cause", "")))
            return None
        if kind == "Choice":
            for choice in state.get("Choices", []):
                if rule_matches(choice, effective, ctx):
                    execution.state = choice["Next"]
                    execution.document = self._output(state, effective, ctx)
                    return None
            if "Default" not in state:
                self._fail(execution, "States.NoChoiceMatched", "no choice rule matched")
                return None
            execution.state = state["Default"]
            execution.document = self._output(state, effective, ctx)
            return None
        if kind == "Wait":
            seconds = self._wait_seconds(state, effective, ctx)
            self._advance(execution, state, self._output(state, effective, ctx))
            execution.resume = "wait" if execution.status == "RUNNING" else None
            # The next state must not run before the wait: step() resumes with resume="wait".
            return Pause(seconds)
        if kind == "Pass":
            params = (
                render(state["Parameters"], effective, ctx) if "Parameters" in state else effective
            )
            result = state.get("Result", params)
            merged = set_path(raw, state.get("ResultPath", "$"), result)
            self._advance(execution, state, self._output(state, merged, ctx))
            return None
        return self._task(execution, state, raw, effective, ctx)

    def _wait_seconds(self, state: dict[str, Any], document: Any, ctx: Any) -> float:
        if "Seconds" in state:
            value = state["Seconds"]
        elif "SecondsPath" in state:
            value = get_path(document, state["SecondsPath"], ctx)
        else:
            raise UnsupportedDefinition("only Seconds and SecondsPath waits are supported")
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise RuntimeFailure(f"Wait seconds must be a non-negative number, got {value!r}")
        return float(value)

    def _output(self, state: dict[str, Any], document: Any, ctx: Any) -> Any:
        path = state.get("OutputPath", "$")
        if path is None:
            return {}
        return get_path(document, path, ctx)

    def _task(
        self, execution: Execution, state: dict[str, Any], raw: Any, effective: Any, ctx: Any
    ) -> Pause | None:
        params = render(state.get("Parameters"), effective, ctx) if "Parameters" in state else None
        try:
            result = self._invoke(state, params if params is not None else effective)
            if "ResultSelector" in state:
                result = render(state["ResultSelector"], result, ctx)
        except RuntimeFailure:
            raise
        except TaskError as exc:
            return self._handle_error(execution, state, raw, exc)
        merged = set_path(raw, state.get("ResultPath", "$"), result)
        self._advance(execution, state, self._output(state, merged, ctx))
        return None

    def _invoke(self, state: dict[str, Any], params: Any) -> Any:
        resource = str(state["Resource"])
        if resource == _LAMBDA_INVOKE:
            if not isinstance(params, dict) or "FunctionName" not in params:
                raise RuntimeFailure("lambda:invoke needs Parameters.FunctionName")
            function = self._function_name(params["FunctionName"])
            payload = self.invoker(function, params.get("Payload", {}))
            return {
                "ExecutedVersion": "$LATEST",
                "Payload": payload,
                "StatusCode": 200,
                "SdkHttpMetadata": {"HttpStatusCode": 200},
                "SdkResponseMetadata": {"RequestId": str(uuid.uuid4())},
            }
        return self.invoker(self._function_name(resource), params)

    def _handle_error(
        self, execution: Execution, state: dict[str, Any], raw: Any, exc: TaskError
    ) -> Pause | None:
        for index, retrier in enumerate(state.get("Retry", [])):
            if not error_matches(retrier.get("ErrorEquals", []), exc.error):
                continue
            key = (execution.state, index)
            made = execution.retries.get(key, 0)
            if made >= int(retrier.get("MaxAttempts", 3)):
                break
            execution.retries[key] = made + 1
            interval = float(retrier.get("IntervalSeconds", 1))
            delay = interval * float(retrier.get("BackoffRate", 2.0)) ** made
            if "MaxDelaySeconds" in retrier:
                delay = min(delay, float(retrier["MaxDelaySeconds"]))
            execution.resume = "retry"
            return Pause(delay)
        for catcher in state.get("Catch", []):
            if error_matches(catcher.get("ErrorEquals", []), exc.error):
                error = {"Error": exc.error, "Cause": exc.cause}
                execution.document = set_path(raw, catcher.get("ResultPath", "$"), error)
                execution.state = catcher["Next"]
                execution.retries.clear()
                return None
        self._fail(execution, exc.error, exc.cause)
        return None
