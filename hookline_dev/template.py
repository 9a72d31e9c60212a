"""Reads template.yaml: the tables, parameter defaults and the retry state machine definition.

The one reader of template.yaml: the local stack and the tests build their DynamoDB tables, the
local API and the functions' environment from here instead of restating them. The template uses
CloudFormation's short-form tags (!Ref, !GetAtt, !Sub), read as their long forms ({"Ref": ...},
{"Fn::GetAtt": [...]}) by a PyYAML safe loader imported lazily. Development only: the Lambda
layer does not ship this module (nor template.yaml).
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

#: template.yaml at the repository root (this file is hookline_dev/template.py).
TEMPLATE_PATH = Path(__file__).resolve().parents[1] / "template.yaml"

#: Logical id -> environment variable, as documented in docs/architecture.md. The template's
#: Globals (an env var whose value is !Ref <table>) wins when it says otherwise.
TABLE_ENV_VARS: dict[str, str] = {
    "CommunitiesTable": "COMMUNITIES_TABLE",
    "WebhooksTable": "WEBHOOKS_TABLE",
    "EventsTable": "EVENTS_TABLE",
    "DeliveryLogTable": "DELIVERIES_TABLE",
    "DirectoryTable": "DIRECTORY_TABLE",
    "IdempotencyTable": "IDEMPOTENCY_TABLE",
}

RETRY_STATE_MACHINE = "RetryStateMachine"


@dataclass(frozen=True)
class TableSpec:
    """One AWS::DynamoDB::Table of the template, as far as a local copy needs it."""

    logical_id: str
    env_var: str
    hash_key: str
    range_key: str | None = None
    #: index name -> (hash attribute, range attribute or None)
    indexes: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    stream_view_type: str | None = None
    ttl_attribute: str | None = None
    #: attribute name -> DynamoDB type ("S", "N", "B") for every key attribute
    attribute_types: dict[str, str] = field(default_factory=dict)
    #: index name -> its Projection as declared ({"ProjectionType": ..., "NonKeyAttributes"?})
    projections: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def short_name(self) -> str:
        """CommunitiesTable -> communities; used for local table names."""
        base = self.logical_id.removesuffix("Table") or self.logical_id
        return re.sub(r"(?<!^)(?=[A-Z])", "-", base).lower()


def _path(path: Path | str | None) -> Path:
    return Path(path) if path is not None else TEMPLATE_PATH


def _intrinsic(loader: Any, suffix: str, node: Any) -> dict[str, Any]:
    """A short-form tag (!Ref X, !GetAtt A.B, !Sub ..., !If [...]) as its long form."""
    import yaml

    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    return {name: value}


@lru_cache(maxsize=8)
def _load_cached(path: Path, mtime_ns: int) -> dict[str, Any]:
    import yaml  # lazy: PyYAML is a local/dev dependency only

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", _intrinsic)
    with path.open(encoding="utf-8") as handle:
        loaded = yaml.load(handle, Loader=Loader)  # noqa: S506 (a SafeLoader subclass)
    result: dict[str, Any] = json.loads(json.dumps(loaded))
    return result


def load_template(path: Path | str | None = None) -> dict[str, Any]:
    """template.yaml as plain dicts/lists ({"Ref": ...} etc. for the short-form tags); a fresh
    copy each call, so callers may change it."""
    resolved = _path(path).resolve()
    return copy.deepcopy(_load_cached(resolved, resolved.stat().st_mtime_ns))


def _resources(template: dict[str, Any], type_name: str) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource
        for logical_id, resource in (template.get("Resources") or {}).items()
        if isinstance(resource, dict) and resource.get("Type") == type_name
    }


def _env_vars_by_ref(template: dict[str, Any]) -> dict[str, str]:
    """Logical id -> the Globals environment variable set to !Ref of it."""
    variables = (
        ((template.get("Globals") or {}).get("Function") or {}).get("Environment") or {}
    ).get("Variables") or {}
    found: dict[str, str] = {}
    for name, value in variables.items():
        if isinstance(value, dict) and isinstance(value.get("Ref"), str):
            found.setdefault(value["Ref"], name)
    return found


def _default_env_var(logical_id: str) -> str:
    base = logical_id.removesuffix("Table")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", base).upper() + "_TABLE"


def _key_schema(schema: list[dict[str, Any]]) -> tuple[str, str | None]:
    hash_key = next(k["AttributeName"] for k in schema if k["KeyType"] == "HASH")
    range_key = next((k["AttributeName"] for k in schema if k["KeyType"] == "RANGE"), None)
    return hash_key, range_key


def table_specs(path: Path | str | None = None) -> list[TableSpec]:
    """Every DynamoDB table the template declares, in template order."""
    template = load_template(path)
    env_by_ref = _env_vars_by_ref(template)
    specs: list[TableSpec] = []
    for logical_id, resource in _resources(template, "AWS::DynamoDB::Table").items():
        props = resource.get("Properties") or {}
        hash_key, range_key = _key_schema(props["KeySchema"])
        indexes: dict[str, tuple[str, str | None]] = {}
        projections: dict[str, dict[str, Any]] = {}
        for index in props.get("GlobalSecondaryIndexes") or []:
            indexes[index["IndexName"]] = _key_schema(index["KeySchema"])
            projections[index["IndexName"]] = dict(
                index.get("Projection") or {"ProjectionType": "ALL"}
            )
        ttl = props.get("TimeToLiveSpecification") or {}
        stream = props.get("StreamSpecification") or {}
        specs.append(
            TableSpec(
                logical_id=logical_id,
                env_var=env_by_ref.get(logical_id)
                or TABLE_ENV_VARS.get(logical_id)
                or _default_env_var(logical_id),
                hash_key=hash_key,
                range_key=range_key,
                indexes=indexes,
                stream_view_type=stream.get("StreamViewType"),
                ttl_attribute=ttl.get("AttributeName") if ttl.get("Enabled", True) else None,
                attribute_types={
                    a["AttributeName"]: a["AttributeType"]
                    for a in props.get("AttributeDefinitions") or []
                },
                projections=projections,
            )
        )
    return specs


def _create_table_request(spec: TableSpec, table_name: str) -> dict[str, Any]:
    key_attributes = {spec.hash_key, *([spec.range_key] if spec.range_key else [])}
    for index_hash, index_range in spec.indexes.values():
        key_attributes.add(index_hash)
        if index_range:
            key_attributes.add(index_range)

    def schema(hash_key: str, range_key: str | None) -> list[dict[str, str]]:
        keys = [{"AttributeName": hash_key, "KeyType": "HASH"}]
        if range_key:
            keys.append({"AttributeName": range_key, "KeyType": "RANGE"})
        return keys

    request: dict[str, Any] = {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": spec.attribute_types.get(name, "S")}
            for name in sorted(key_attributes)
        ],
        "KeySchema": schema(spec.hash_key, spec.range_key),
    }
    if spec.indexes:
        request["GlobalSecondaryIndexes"] = [
            {
                "IndexName": name,
                "KeySchema": schema(*keys),
                "Projection": spec.projections.get(name, {"ProjectionType": "ALL"}),
            }
            for name, keys in spec.indexes.items()
        ]
    if spec.stream_view_type:
        request["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": spec.stream_view_type,
        }
    return request


def create_tables(
    dynamodb_client: Any,
    name_prefix: str = "hookline-local",
    path: Path | str | None = None,
) -> dict[str, str]:
    """Create every template table (keys, GSIs, stream, TTL) through a DynamoDB client, e.g.
    moto's. Returns logical id -> table name (``<prefix>-communities`` ...). A table that
    already exists is left as it is."""
    names: dict[str, str] = {}
    for spec in table_specs(path):
        table_name = f"{name_prefix}-{spec.short_name}"
        try:
            dynamodb_client.create_table(**_create_table_request(spec, table_name))
        except dynamodb_client.exceptions.ResourceInUseException:
            names[spec.logical_id] = table_name
            continue
        dynamodb_client.get_waiter("table_exists").wait(
            TableName=table_name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
        )
        if spec.ttl_attribute:
            dynamodb_client.update_time_to_live(
                TableName=table_name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
            )
        names[spec.logical_id] = table_name
    return names


def table_environment(
    table_names: dict[str, str], path: Path | str | None = None
) -> dict[str, str]:
    """Environment variables (COMMUNITIES_TABLE=...) for tables made by create_tables."""
    return {
        spec.env_var: table_names[spec.logical_id]
        for spec in table_specs(path)
        if spec.logical_id in table_names
    }


def parameter_default(name: str, path: Path | str | None = None) -> str:
    """A template parameter's Default, as a string (CloudFormation passes parameters as
    strings). KeyError when the parameter or its default is absent."""
    parameters = load_template(path).get("Parameters") or {}
    default = parameters[name]["Default"]
    if isinstance(default, list):
        return ",".join(str(item) for item in default)
    return str(default)


def resolve(node: Any, parameters: dict[str, Any], default: Any = None) -> Any:
    """A static reading of one property: a Ref to a parameter gives its Default; any other
    intrinsic (a resource Ref, Fn::...) gives `default`."""
    if isinstance(node, dict) and set(node) == {"Ref"}:
        param = parameters.get(node["Ref"]) or {}
        return param.get("Default", default)
    if isinstance(node, dict) and any(key.startswith("Fn::") for key in node):
        return default
    return default if node is None else node


def function_environment(
    logical_id: str | None = None, path: Path | str | None = None
) -> dict[str, str]:
    """The environment variables a function gets (the Globals', then its own), parameters at
    their defaults; variables naming a resource (a table, the state machine) are left out, for
    the caller to fill. Without `logical_id`: the Globals' alone."""
    template = load_template(path)
    parameters = template.get("Parameters") or {}
    globals_env = (
        ((template.get("Globals") or {}).get("Function") or {}).get("Environment") or {}
    ).get("Variables") or {}
    own: dict[str, Any] = {}
    if logical_id is not None:
        props = (template["Resources"][logical_id].get("Properties")) or {}
        own = (props.get("Environment") or {}).get("Variables") or {}
    env: dict[str, str] = {}
    for name, node in {**globals_env, **own}.items():
        value = resolve(node, parameters)
        if isinstance(value, bool):
            env[name] = str(value).lower()
        elif isinstance(value, str | int | float):
            env[name] = str(value)
    return env


def function_variable_names(logical_id: str, path: Path | str | None = None) -> list[str]:
    """Every environment variable name a function is given, resource references included."""
    template = load_template(path)
    globals_env = (
        ((template.get("Globals") or {}).get("Function") or {}).get("Environment") or {}
    ).get("Variables") or {}
    props = (template["Resources"][logical_id].get("Properties")) or {}
    own = (props.get("Environment") or {}).get("Variables") or {}
    return list({**globals_env, **own})


def retry_state_machine_definition(
    attempt_function_arn: str, path: Path | str | None = None
) -> str:
    """The retry workflow's ASL (statemachine/retry.asl.json) with its DefinitionSubstitutions
    resolved: ${AttemptFunctionArn} -> attempt_function_arn."""
    template_file = _path(path)
    resource = load_template(template_file)["Resources"][RETRY_STATE_MACHINE]
    props = resource.get("Properties") or {}
    definition_file = template_file.resolve().parent / props["DefinitionUri"]
    definition = definition_file.read_text(encoding="utf-8")
    values = {"AttemptFunctionArn": attempt_function_arn}
    for key in props.get("DefinitionSubstitutions") or {}:
        if key not in values:
            raise KeyError(f"no local value for DefinitionSubstitutions key {key!r}")
        definition = definition.replace("${" + key + "}", values[key])
    leftover = re.search(r"\$\{[A-Za-z0-9_]+\}", definition)
    if leftover:
        raise ValueError(f"unresolved substitution {leftover.group(0)} in {definition_file}")
    json.loads(definition)  # fail here rather than in CreateStateMachine
    return definition
