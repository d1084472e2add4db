"""Build the OpenAPI 3.1 document of the Connect door from the compiled .proto descriptors.

proto/generate.py calls `build(out)`, which writes `out/openapi.json`; so the document is made
at build time from the same .proto files as the code, and `generate.py --check` (run by the
tests) fails when the committed rules_engine/_generated/openapi.json is stale.

protoc compiles proto/ (with source info, so the .proto comments become descriptions) into a
descriptor set; the descriptors are loaded into a fresh pool and walked:

- one schema per message and enum reached from the service, named by its full proto name;
  properties follow the proto3 JSON mapping: the field's json_name (lowerCamelCase) as the
  property, the proto field name (which parsers accept too) as a pattern property, so a client
  generated from the document has one name per field and a validator accepts both; unknown
  fields refused (additionalProperties false, as the door's strict codec does), 64-bit
  integers as decimal strings, enums as their value names, repeated fields as arrays, maps as
  objects, the well-known types in their JSON forms (Timestamp as an RFC 3339 string, Duration
  as "1.5s", wrappers as their scalar, Struct/Value as any JSON), and at most one member of a
  oneof (a `not` over every pair);
- one path per RPC in the Connect protocol: POST /<package.Service>/<Method> with JSON bodies
  for unary methods, the GET form (query `encoding`, `message`, `base64`, `connect`) for
  methods marked `idempotency_level = NO_SIDE_EFFECTS`, server streaming as
  `application/connect+json` (enveloped messages, described in words: OpenAPI has no schema
  for the envelope); the Connect error body as every unary method's default response; the
  Connect-Protocol-Version and Connect-Timeout-Ms headers; bearer authentication.

The output is deterministic (sorted keys, fixed indentation), so regenerating gives the same
bytes.
"""

from __future__ import annotations

import itertools
import json
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor, FileDescriptor
from grpc_tools import protoc  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
FILENAME = "openapi.json"
OPENAPI_VERSION = "3.1.0"
SERVER_URL = "http://localhost:8080"

Schema = dict[str, Any]

_INT32 = {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1}
_UINT32 = {"type": "integer", "format": "uint32", "minimum": 0, "maximum": 2**32 - 1}
_INT64 = {
    "type": "string",
    "format": "int64",
    "pattern": "^-?[0-9]+$",
    "description": "A 64-bit integer as a decimal string (proto3 JSON).",
}
_UINT64 = {
    "type": "string",
    "format": "uint64",
    "pattern": "^[0-9]+$",
    "description": "An unsigned 64-bit integer as a decimal string (proto3 JSON).",
}
_BYTES = {"type": "string", "format": "byte", "contentEncoding": "base64"}

_SCALARS: dict[int, Schema] = {
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldDescriptor.TYPE_INT32: _INT32,
    FieldDescriptor.TYPE_SINT32: _INT32,
    FieldDescriptor.TYPE_SFIXED32: _INT32,
    FieldDescriptor.TYPE_UINT32: _UINT32,
    FieldDescriptor.TYPE_FIXED32: _UINT32,
    FieldDescriptor.TYPE_INT64: _INT64,
    FieldDescriptor.TYPE_SINT64: _INT64,
    FieldDescriptor.TYPE_SFIXED64: _INT64,
    FieldDescriptor.TYPE_UINT64: _UINT64,
    FieldDescriptor.TYPE_FIXED64: _UINT64,
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: _BYTES,
}

# The well-known types have JSON forms of their own (the proto3 JSON mapping).
_WELL_KNOWN: dict[str, Schema] = {
    "google.protobuf.Timestamp": {
        "type": "string",
        "format": "date-time",
        "description": 'An RFC 3339 timestamp in UTC, e.g. "2025-06-02T09:30:00Z".',
    },
    "google.protobuf.Duration": {
        "type": "string",
        "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$",
        "description": 'A duration in seconds with an "s" suffix, e.g. "1.5s".',
    },
    "google.protobuf.FieldMask": {
        "type": "string",
        "description": "Field paths in lowerCamelCase, separated by commas.",
    },
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True, "description": "Any JSON object."},
    "google.protobuf.Value": {"description": "Any JSON value."},
    "google.protobuf.ListValue": {"type": "array", "items": {}, "description": "Any JSON array."},
    "google.protobuf.Empty": {"type": "object", "description": "An empty object."},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string", "description": "The type URL of the packed message."}},
        "required": ["@type"],
        "additionalProperties": True,
        "description": "A message of any type: its JSON form with an @type member naming the type.",
    },
    "google.protobuf.DoubleValue": {"type": "number", "format": "double"},
    "google.protobuf.FloatValue": {"type": "number", "format": "float"},
    "google.protobuf.Int64Value": _INT64,
    "google.protobuf.UInt64Value": _UINT64,
    "google.protobuf.Int32Value": _INT32,
    "google.protobuf.UInt32Value": _UINT32,
    "google.protobuf.BoolValue": {"type": "boolean"},
    "google.protobuf.StringValue": {"type": "string"},
    "google.protobuf.BytesValue": _BYTES,
}

# Connect error codes (connectrpc.com/docs/protocol#error-codes).
CONNECT_CODES = [
    "canceled",
    "unknown",
    "invalid_argument",
    "deadline_exceeded",
    "not_found",
    "already_exists",
    "permission_denied",
    "resource_exhausted",
    "failed_precondition",
    "aborted",
    "out_of_range",
    "unimplemented",
    "internal",
    "unavailable",
    "data_loss",
    "unauthenticated",
]
ERROR_SCHEMA = "connect.error"
ERROR_DETAIL_SCHEMA = "connect.error_details.Any"
BAD_REQUEST_SCHEMA = "google.rpc.BadRequest"
UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"

_JSON_MAPPING_NOTE = """\
Connect protocol over HTTP: each RPC is POST /<service>/<method> with the request message as
JSON (`Content-Type: application/json`) or binary protobuf (`application/proto`);
side-effect-free methods also answer GET. Messages use the proto3 JSON mapping: fields by their
lowerCamelCase JSON names (the proto field names, e.g. `case_id`, are accepted too), 64-bit
integers as strings, enums by value name, fields at their default value omitted from responses.
Errors are the Connect error JSON (`code`, `message`, `details`); a validation error is
`invalid_argument` with a `google.rpc.BadRequest` detail naming each field path."""


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _clean(comment: str) -> str:
    return "\n".join(line.strip() for line in comment.strip().splitlines()).strip()


def _first_sentence(text: str) -> str:
    return re.split(r"(?<=\.)\s", " ".join(text.split()), maxsplit=1)[0].rstrip(".")


def _comments(file: descriptor_pb2.FileDescriptorProto) -> dict[str, str]:
    """The leading (else trailing) comment of each message, field, enum, value, service and method,
    by full name (enum values by `<enum full name>.<VALUE>`)."""
    by_path: dict[tuple[int, ...], str] = {}
    for location in file.source_code_info.location:
        text = location.leading_comments or location.trailing_comments
        if text.strip():
            by_path[tuple(location.path)] = _clean(text)
    names: dict[str, str] = {}

    def note(name: str, path: tuple[int, ...]) -> None:
        if path in by_path:
            names[name] = by_path[path]

    def enum(proto: descriptor_pb2.EnumDescriptorProto, path: tuple[int, ...], scope: str) -> None:
        name = f"{scope}.{proto.name}"
        note(name, path)
        for i, value in enumerate(proto.value):
            note(f"{name}.{value.name}", (*path, 2, i))

    def message(proto: descriptor_pb2.DescriptorProto, path: tuple[int, ...], scope: str) -> None:
        name = f"{scope}.{proto.name}"
        note(name, path)
        for i, field in enumerate(proto.field):
            note(f"{name}.{field.name}", (*path, 2, i))
        for i, nested in enumerate(proto.nested_type):
            message(nested, (*path, 3, i), name)
        for i, nested_enum in enumerate(proto.enum_type):
            enum(nested_enum, (*path, 4, i), name)

    for i, proto in enumerate(file.message_type):
        message(proto, (4, i), file.package)
    for i, enum_proto in enumerate(file.enum_type):
        enum(enum_proto, (5, i), file.package)
    for i, service in enumerate(file.service):
        name = f"{file.package}.{service.name}"
        note(name, (6, i))
        for j, method in enumerate(service.method):
            note(f"{name}.{method.name}", (6, i, 2, j))
    return names


def compile_protos(proto_dir: Path = PROTO_DIR) -> descriptor_pb2.FileDescriptorSet:
    """protoc's descriptor set for every .proto under proto_dir (with imports and source info)."""
    protos = sorted(str(p.relative_to(proto_dir)) for p in proto_dir.rglob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "descriptors.pb"
        args = [
            "protoc",
            f"-I{proto_dir}",
            f"-I{include}",
            f"--descriptor_set_out={target}",
            "--include_imports",
            "--include_source_info",
            *protos,
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed (descriptor set for the OpenAPI document)")
        return descriptor_pb2.FileDescriptorSet.FromString(target.read_bytes())


class _Builder:
    def __init__(self, files: descriptor_pb2.FileDescriptorSet, own: Iterable[str]) -> None:
        self.pool = descriptor_pool.DescriptorPool()
        for file in files.file:
            self.pool.AddSerializedFile(file.SerializeToString())
        self.own = sorted(own)
        self.comments: dict[str, str] = {}
        for file in files.file:
            if file.name in self.own:
                self.comments.update(_comments(file))
        self.schemas: dict[str, Schema] = {}

    # -- schemas ---------------------------------------------------------------------------

    def _describe(self, schema: Schema, name: str, extra: str = "") -> Schema:
        text = "\n\n".join(part for part in (self.comments.get(name, ""), extra) if part)
        if text:
            schema = {**schema, "description": text}
        return schema

    def _enum(self, enum: EnumDescriptor) -> Schema:
        if enum.full_name == "google.protobuf.NullValue":
            return {"type": "null"}
        if enum.full_name not in self.schemas:
            lines = [
                f"- `{value.name}`: {self.comments[f'{enum.full_name}.{value.name}']}".replace("\n", " ")
                for value in enum.values
                if f"{enum.full_name}.{value.name}" in self.comments
            ]
            schema: Schema = {"type": "string", "enum": [value.name for value in enum.values]}
            self.schemas[enum.full_name] = self._describe(schema, enum.full_name, "\n".join(lines))
        return _ref(enum.full_name)

    def _element(self, field: FieldDescriptor) -> Schema:
        if field.enum_type is not None:
            return self._enum(field.enum_type)
        if field.message_type is not None:
            return self._message(field.message_type)
        return dict(_SCALARS[field.type])

    def _field(self, field: FieldDescriptor) -> Schema:
        message_type = field.message_type
        if message_type is not None and message_type.GetOptions().map_entry:
            key, value = message_type.fields_by_name["key"], message_type.fields_by_name["value"]
            schema: Schema = {"type": "object", "additionalProperties": self._element(value)}
            if key.type != FieldDescriptor.TYPE_STRING:
                # Map keys are always JSON strings: the key's decimal or true/false form.
                pattern = "^(true|false)$" if key.type == FieldDescriptor.TYPE_BOOL else "^-?[0-9]+$"
                schema["propertyNames"] = {"pattern": pattern}
            return schema
        if field.is_repeated:
            return {"type": "array", "items": self._element(field)}
        return self._element(field)

    def _message(self, message: Descriptor) -> Schema:
        name = message.full_name
        if name in self.schemas:
            return _ref(name)
        if name in _WELL_KNOWN:
            self.schemas[name] = dict(_WELL_KNOWN[name])
            return _ref(name)
        schema: Schema = {"type": "object"}
        self.schemas[name] = schema  # placed first: recursive messages refer to it
        proto = descriptor_pb2.DescriptorProto()
        message.CopyToProto(proto)
        synthetic = {proto.oneof_decl[f.oneof_index].name for f in proto.field if f.proto3_optional}
        oneofs = [oneof for oneof in message.oneofs if oneof.name not in synthetic]
        properties: dict[str, Schema] = {}
        proto_names: dict[str, Schema] = {}
        for field in message.fields:
            extra = ""
            oneof = field.containing_oneof
            if oneof is not None and oneof.name not in synthetic:
                members = ", ".join(f"`{f.json_name}`" for f in oneof.fields)
                extra = f"One of {members} (oneof `{oneof.name}`): at most one is set."
            field_schema = self._field(field)
            properties[field.json_name] = self._describe(field_schema, f"{name}.{field.name}", extra)
            if field.name != field.json_name:
                # Parsers accept the proto field name too; as a pattern, so clients generated from
                # the document keep one name per field (the JSON name) while validators accept both.
                described = f"The proto field name of `{field.json_name}` (accepted in requests)."
                proto_names[f"^{field.name}$"] = {**field_schema, "description": described}
        if properties:
            schema["properties"] = properties
        if proto_names:
            schema["patternProperties"] = proto_names
        # Unknown fields are refused (the door's strict JSON codec), as the proto3 JSON mapping advises.
        schema["additionalProperties"] = False
        pairs = [
            {"required": [a.json_name, b.json_name]}
            for oneof in oneofs
            for a, b in itertools.combinations(oneof.fields, 2)
        ]
        if pairs:
            schema["not"] = {"anyOf": pairs}
        self.schemas[name] = self._describe(schema, name)
        return _ref(name)

    # -- paths -----------------------------------------------------------------------------

    def _paths(self) -> dict[str, Any]:
        paths: dict[str, Any] = {}
        operation_ids: set[str] = set()
        for file_name in self.own:
            file: FileDescriptor = self.pool.FindFileByName(file_name)
            for service in file.services_by_name.values():
                for method in service.methods:
                    path = f"/{service.full_name}/{method.name}"
                    description = self.comments.get(f"{service.full_name}.{method.name}", "")
                    request, response = self._message(method.input_type), self._message(method.output_type)
                    common = {
                        "tags": [service.full_name],
                        "summary": _first_sentence(description),
                        "description": description,
                    }
                    if method.server_streaming or method.client_streaming:
                        paths[path] = {"post": self._streaming(method.name, common, method, request, response)}
                        operation_ids.add(method.name)
                        continue
                    operations = {"post": self._unary_post(method.name, common, request, response)}
                    options = method.GetOptions()
                    if options.idempotency_level == descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS:
                        operations["get"] = self._unary_get(f"{method.name}Get", common, request, response)
                        operation_ids.add(f"{method.name}Get")
                    if method.name in operation_ids:
                        raise SystemExit(f"two RPCs named {method.name}: operationIds must be unique")
                    operation_ids.add(method.name)
                    paths[path] = operations
        return paths

    @staticmethod
    def _headers() -> list[Schema]:
        return [
            {"$ref": "#/components/parameters/Connect-Protocol-Version"},
            {"$ref": "#/components/parameters/Connect-Timeout-Ms"},
        ]

    @staticmethod
    def _ok(response: Schema) -> Schema:
        return {"description": "The response message.", "content": {"application/json": {"schema": response}}}

    @classmethod
    def _responses(cls, response: Schema) -> Schema:
        return {
            "200": cls._ok(response),
            "415": {"$ref": f"#/components/responses/{UNSUPPORTED_MEDIA_TYPE}"},
            "default": {"$ref": f"#/components/responses/{ERROR_SCHEMA}"},
        }

    def _unary_post(self, operation_id: str, common: Schema, request: Schema, response: Schema) -> Schema:
        return {
            **common,
            "operationId": operation_id,
            "parameters": self._headers(),
            "requestBody": {
                "required": True,
                "description": "The request message (binary protobuf as `application/proto` is accepted too).",
                "content": {"application/json": {"schema": request}},
            },
            "responses": self._responses(response),
        }

    def _unary_get(self, operation_id: str, common: Schema, request: Schema, response: Schema) -> Schema:
        get_note = (
            "The Connect GET form of the call (the method has no side effects, so caches and browsers "
            "may use it): the request message goes in the query string."
        )
        return {
            **common,
            "operationId": operation_id,
            "description": "\n\n".join(part for part in (common["description"], get_note) if part),
            "parameters": [
                {
                    "name": "encoding",
                    "in": "query",
                    "required": True,
                    "description": "The message's codec: `json` (as here; `proto` is accepted with `base64=1`).",
                    "schema": {"type": "string", "enum": ["json"]},
                },
                {
                    "name": "message",
                    "in": "query",
                    "required": True,
                    "description": "The request message as JSON, URL-encoded (or base64url with `base64=1`); "
                    "`{}` for an empty message.",
                    # A string holding JSON (JSON Schema's content vocabulary): generators that do
                    # not handle a parameter with `content` still pass it on.
                    "schema": {"type": "string", "contentMediaType": "application/json", "contentSchema": request},
                    "example": "{}",
                },
                {
                    "name": "base64",
                    "in": "query",
                    "required": False,
                    "description": "`1` when `message` is base64url-encoded.",
                    "schema": {"type": "string", "enum": ["1"]},
                },
                {
                    "name": "connect",
                    "in": "query",
                    "required": False,
                    "description": "The Connect protocol version (the GET form of Connect-Protocol-Version).",
                    "schema": {"type": "string", "enum": ["v1"]},
                },
                {"$ref": "#/components/parameters/Connect-Timeout-Ms"},
            ],
            "responses": self._responses(response),
        }

    def _streaming(self, operation_id: str, common: Schema, method: Any, request: Schema, response: Schema) -> Schema:
        kind = "server" if not method.client_streaming else "client" if not method.server_streaming else "bidi"
        request_name, response_name = request["$ref"].rsplit("/", 1)[1], response["$ref"].rsplit("/", 1)[1]
        stream_note = (
            f"A {kind}-streaming RPC in the Connect streaming protocol, outside what an OpenAPI schema "
            "can check: the body is a sequence of envelopes, each a 1-byte flags field, a 4-byte "
            "big-endian length and a message in JSON (`application/connect+json`) or binary protobuf "
            f"(`application/connect+proto`). The request is one `{request_name}`; the response is one "
            f"`{response_name}` per envelope, then an end-of-stream envelope (flags 0x02) holding a "
            "JSON object with `error` (the Connect error, when the call failed) and `metadata` "
            "(trailers). The HTTP status is 200 once the stream has started, even when it ends in "
            "an error."
        )
        return {
            **common,
            "operationId": operation_id,
            "description": "\n\n".join(part for part in (common["description"], stream_note) if part),
            "x-connect-streaming": kind,
            "parameters": self._headers(),
            "requestBody": {
                "required": True,
                "description": f"One enveloped `{request_name}`.",
                "content": {"application/connect+json": {"x-connect-message": request}},
            },
            "responses": {
                "200": {
                    "description": f"Enveloped `{response_name}` messages, then the end-of-stream envelope.",
                    "content": {"application/connect+json": {"x-connect-message": response}},
                }
            },
        }

    # -- document --------------------------------------------------------------------------

    def document(self) -> dict[str, Any]:
        paths = self._paths()
        services = [
            service
            for file_name in self.own
            for service in self.pool.FindFileByName(file_name).services_by_name.values()
        ]
        schemas = dict(self.schemas)
        schemas[ERROR_SCHEMA] = _error_schema()
        schemas[ERROR_DETAIL_SCHEMA] = _error_detail_schema()
        schemas[BAD_REQUEST_SCHEMA] = _bad_request_schema()
        description = "\n\n".join([*(self.comments.get(s.full_name, "") for s in services), _JSON_MAPPING_NOTE])
        return {
            "openapi": OPENAPI_VERSION,
            "info": {
                "title": "rules-engine: " + ", ".join(s.full_name for s in services),
                "version": ", ".join(sorted({s.file.package for s in services})),
                "description": description,
                "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
            },
            "servers": [{"url": SERVER_URL, "description": "`rules-engine serve` (HTTP door, --http-port 8080)"}],
            "tags": [{"name": s.full_name, "description": self.comments.get(s.full_name, "")} for s in services],
            "security": [{"bearer": []}, {}],
            "paths": paths,
            "components": {
                "schemas": schemas,
                "responses": {
                    UNSUPPORTED_MEDIA_TYPE: {
                        "description": "The request's Content-Type (or the GET form's `encoding`) is "
                        "missing or not one the door speaks (`application/json`, `application/proto`); "
                        "answered by the Connect runtime before the call, with no body."
                    },
                    ERROR_SCHEMA: {
                        "description": "A Connect error; the HTTP status follows the code "
                        "(invalid_argument 400, unauthenticated 401, permission_denied 403, "
                        "not_found 404, resource_exhausted 429, unavailable 503, deadline_exceeded 504, ...).",
                        "content": {"application/json": {"schema": _ref(ERROR_SCHEMA)}},
                    },
                },
                "parameters": {
                    "Connect-Protocol-Version": {
                        "name": "Connect-Protocol-Version",
                        "in": "header",
                        "required": False,
                        "description": "The Connect protocol version; clients should send `1`.",
                        "schema": {"type": "string", "enum": ["1"]},
                    },
                    "Connect-Timeout-Ms": {
                        "name": "Connect-Timeout-Ms",
                        "in": "header",
                        "required": False,
                        "description": "The caller's deadline in milliseconds, a positive integer of at "
                        "most 10 digits; past it the call ends with `deadline_exceeded` (HTTP 504).",
                        "schema": {"type": "string", "pattern": "^[1-9][0-9]{0,9}$"},
                    },
                },
                "securitySchemes": {
                    "bearer": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "A client's token (`serve --clients`); needed only when the "
                        "service is configured with tokens. Clients with mTLS identities authenticate "
                        "with their certificate instead.",
                    }
                },
            },
        }


def _error_schema() -> Schema:
    return {
        "type": "object",
        "description": "The Connect error body (connectrpc.com/docs/protocol#error-end-stream).",
        "properties": {
            "code": {"type": "string", "enum": CONNECT_CODES, "description": "The Connect error code."},
            "message": {"type": "string", "description": "What went wrong, for a developer."},
            "details": {
                "type": "array",
                "items": _ref(ERROR_DETAIL_SCHEMA),
                "description": "Error details, e.g. a google.rpc.BadRequest for a validation error.",
            },
        },
        "required": ["code"],
    }


def _error_detail_schema() -> Schema:
    return {
        "type": "object",
        "description": "One error detail: a protobuf message by type name and bytes.",
        "properties": {
            "type": {
                "type": "string",
                "description": "The detail's fully qualified message name, e.g. `google.rpc.BadRequest`.",
            },
            "value": {
                "type": "string",
                "contentEncoding": "base64",
                "description": "The detail message in binary protobuf, base64 without padding.",
            },
            "debug": {
                "type": "object",
                "description": "The detail in its proto3 JSON form, when the server can render it "
                f"(for `google.rpc.BadRequest` see the `{BAD_REQUEST_SCHEMA}` schema).",
            },
        },
        "required": ["type", "value"],
    }


def _bad_request_schema() -> Schema:
    return {
        "type": "object",
        "description": "The detail of an `invalid_argument` error: which request fields are wrong.",
        "properties": {
            "fieldViolations": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "field": {
                            "type": "string",
                            "description": "The field's path in the request, e.g. `case.concerns[0].date`.",
                        },
                        "description": {"type": "string", "description": "Why the value is refused."},
                    },
                },
            }
        },
    }


def build_document(proto_dir: Path = PROTO_DIR) -> dict[str, Any]:
    """The OpenAPI document for the services of the .proto files under proto_dir."""
    files = compile_protos(proto_dir)
    own = {str(p.relative_to(proto_dir)) for p in proto_dir.rglob("*.proto")}
    return _Builder(files, own).document()


def render(document: dict[str, Any]) -> str:
    """The document as stable JSON text: sorted keys, two-space indentation, a final newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def build(out: Path) -> None:
    """Write out/openapi.json (called by proto/generate.py)."""
    (out / FILENAME).write_text(render(build_document()), encoding="utf-8")


if __name__ == "__main__":
    print(render(build_document()), end="")
