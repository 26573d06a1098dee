"""The OpenAPI document in the 3.0 dialect, which the tools engineers run read (openapi-spec-
validator, openapi-python-client, most generators).

BentoML labels its document ``openapi: 3.0.2`` but fills it with pydantic's JSON Schema (draft
2020-12, the dialect of OpenAPI 3.1): a nullable field is ``anyOf: [..., {type: "null"}]``, which
3.0 has no type for (``Unknown type 'null'``). :func:`as_openapi30` rewrites every Schema Object
of the document into 3.0's terms, walking the schema's structure (a column named ``const`` or
``default`` is a property, not a keyword):

- ``anyOf``/``oneOf`` with ``{type: "null"}``, and ``type: [..., "null"]``, become the other
  branch with ``nullable: true`` (a lone ``$ref`` under ``allOf``: 3.0 ignores a ``$ref``'s
  siblings);
- ``const: v`` becomes ``enum: [v]``; a numeric ``exclusiveMinimum``/``exclusiveMaximum`` the
  bound with the boolean flag; ``examples`` the first as ``example``.

:func:`prune_components` then drops the component schemas no path refers to (BentoML adds its
task and error models whatever the service serves).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

VERSION = "3.0.3"
"""What the document says it is (3.0.3 states what ``nullable`` means, as 3.0.2 did not)."""
NULL = {"type": "null"}
#: Keywords holding one schema, a list of schemas, or a map of name -> schema.
ONE = ("items", "additionalProperties", "not", "contains", "propertyNames")
MANY = ("anyOf", "oneOf", "allOf", "prefixItems")
MAPS = ("properties", "patternProperties", "$defs", "definitions")
REF = re.compile(r"^#/components/schemas/(.+)$")


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with a ``null`` branch or type turned into ``nullable`` (before its branches
    are converted: a lone ``{type: "null"}`` is converted otherwise)."""
    kind = schema.get("type")
    if isinstance(kind, list):
        rest = [k for k in kind if k != "null"]
        schema = {**schema, "type": rest[0] if len(rest) == 1 else rest}
        if len(rest) < len(kind):
            schema["nullable"] = True
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if not isinstance(branches, list) or NULL not in branches:
            continue
        rest = [b for b in branches if b != NULL]
        schema = {k: v for k, v in schema.items() if k != key}
        if len(rest) == 1 and "$ref" in rest[0]:
            schema["allOf"] = rest
        elif len(rest) == 1:
            schema = {**rest[0], **schema}
        elif rest:
            schema[key] = rest
        schema["nullable"] = True
    if schema.get("type") == "null":  # only ever null: 3.0 has no such type
        schema = {k: v for k, v in schema.items() if k != "type"}
        schema.update(enum=[None], nullable=True)
    return schema


def as_schema30(schema: Any) -> Any:
    """One JSON Schema as an OpenAPI 3.0 Schema Object (see the module docstring)."""
    if not isinstance(schema, dict):
        return schema
    out = _nullable(dict(schema))
    for key in ONE:
        if isinstance(out.get(key), dict):
            out[key] = as_schema30(out[key])
    for key in MANY:
        if isinstance(out.get(key), list):
            out[key] = [as_schema30(s) for s in out[key]]
    for key in MAPS:
        if isinstance(out.get(key), dict):
            out[key] = {name: as_schema30(s) for name, s in out[key].items()}
    if "const" in out:
        out["enum"] = [out.pop("const")]
    for bound, flag in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = out.get(bound)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[flag], out[bound] = value, True
    examples = out.pop("examples", None)
    if isinstance(examples, list) and examples and "example" not in out:
        out["example"] = examples[0]
    out.pop("$schema", None)
    return out


def _schema_slots(node: Any) -> Iterator[tuple[dict[str, Any], str]]:
    """Every (container, key) of the document holding a Schema Object outside the components:
    media types, parameters and headers (``schema``)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "schema" and isinstance(value, dict):
                yield node, key
            else:
                yield from _schema_slots(value)
    elif isinstance(node, list):
        for value in node:
            yield from _schema_slots(value)


def as_openapi30(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` (changed in place) in the 3.0 dialect, its version :data:`VERSION`."""
    spec["openapi"] = VERSION
    for holder, key in list(_schema_slots(spec.get("paths", {}))):
        holder[key] = as_schema30(holder[key])
    schemas = spec.get("components", {}).get("schemas", {})
    for name, schema in schemas.items():
        schemas[name] = as_schema30(schema)
    return spec


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and (found := REF.match(ref)):
            yield found.group(1)
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def prune_components(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` (changed in place) without the component schemas no path refers to, directly
    or through other components (an empty ``schemas`` goes too)."""
    components = spec.get("components", {})
    schemas = components.get("schemas", {})
    kept: set[str] = set()
    todo = list(_refs(spec.get("paths", {})))
    while todo:
        name = todo.pop()
        if name in kept or name not in schemas:
            continue
        kept.add(name)
        todo.extend(_refs(schemas[name]))
    if "schemas" in components:
        components["schemas"] = {k: v for k, v in schemas.items() if k in kept}
        if not components["schemas"]:
            del components["schemas"]
    return spec


__all__ = ["VERSION", "as_openapi30", "as_schema30", "prune_components"]
