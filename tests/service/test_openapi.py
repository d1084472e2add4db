"""The OpenAPI 3.1 document of the Connect door (rules_engine/_generated/openapi.json, built from the
.proto descriptors by proto/openapi.py): valid, current, one path per RPC, schemas that agree with
the protobuf runtime, and usable by a real client generator against the running service."""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import jsonschema
import pytest
from google.protobuf import descriptor_pb2, json_format
from google.protobuf.descriptor import Descriptor
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from rules_engine._generated.rules_engine.v1 import rules_engine_pb2 as pb
from rules_engine._generated.rules_engine.v1 import rules_engine_pb2_grpc as pb_grpc
from tests.redis_server import free_port
from tests.serve_process import serve

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "rules_engine" / "_generated" / "openapi.json"
EXAMPLE = ROOT / "examples" / "evaluate-request.json"
SERVICE = pb.DESCRIPTOR.services_by_name["RulesEngineService"]
# The generator's binary, installed beside this interpreter with the dev dependencies.
OPENAPI_PYTHON_CLIENT = Path(sys.executable).parent / "openapi-python-client"


def _load_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_proto_openapi_under_test", ROOT / "proto" / "openapi.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DOCUMENT.read_text(encoding="utf-8"))
    return loaded


def _validator(document: dict[str, Any], name: str) -> jsonschema.Draft202012Validator:
    """A JSON Schema validator for components/schemas/<name>, resolving $refs inside the document."""
    registry: Registry[Any] = Registry().with_resource(
        "urn:rules-engine:openapi", Resource.from_contents(document, default_specification=DRAFT202012)
    )
    schema = {"$ref": f"urn:rules-engine:openapi#/components/schemas/{name}"}
    return jsonschema.Draft202012Validator(
        schema, registry=registry, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1.")
    validate(document, cls=OpenAPIV31SpecValidator)


def test_document_is_current() -> None:
    # generate.py --check covers it too (tests/service/test_proto.py); this names the one file.
    builder = _load_builder()
    fresh = builder.render(builder.build_document())

    assert fresh == DOCUMENT.read_text(encoding="utf-8"), "stale: run python proto/generate.py"
    assert builder.render(builder.build_document()) == fresh  # deterministic


def test_every_rpc_has_a_connect_path(document: dict[str, Any]) -> None:
    paths = document["paths"]
    expected = {f"/{SERVICE.full_name}/{method.name}" for method in SERVICE.methods}
    assert set(paths) == expected
    for method in SERVICE.methods:
        path = paths[f"/{SERVICE.full_name}/{method.name}"]
        request = f"#/components/schemas/{method.input_type.full_name}"
        response = f"#/components/schemas/{method.output_type.full_name}"
        if method.server_streaming:
            assert set(path) == {"post"}
            body = path["post"]["requestBody"]["content"]["application/connect+json"]
            assert body["x-connect-message"] == {"$ref": request}
            continue
        post = path["post"]
        assert post["requestBody"]["content"]["application/json"]["schema"] == {"$ref": request}
        assert post["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": response}
        assert post["responses"]["default"] == {"$ref": "#/components/responses/connect.error"}
        headers = {parameter["$ref"].rsplit("/", 1)[1] for parameter in post["parameters"]}
        assert headers == {"Connect-Protocol-Version", "Connect-Timeout-Ms"}
        side_effect_free = method.GetOptions().idempotency_level == descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS
        assert ("get" in path) == side_effect_free, method.name
    get = paths[f"/{SERVICE.full_name}/ListRulesets"]["get"]
    query = {parameter.get("name"): parameter for parameter in get["parameters"]}
    assert {"encoding", "message", "base64", "connect"} <= set(query)
    assert query["encoding"]["required"] and query["message"]["required"]
    assert document["components"]["securitySchemes"]["bearer"] == {
        **document["components"]["securitySchemes"]["bearer"],
        "type": "http",
        "scheme": "bearer",
    }
    assert document["servers"][0]["url"] == "http://localhost:8080"


def _messages(descriptor: Descriptor, seen: dict[str, Descriptor]) -> None:
    if descriptor.full_name in seen or descriptor.full_name.startswith("google.protobuf."):
        return
    seen[descriptor.full_name] = descriptor
    for field in descriptor.fields:
        if field.message_type is not None:
            _messages(field.message_type, seen)


def test_schemas_follow_the_generated_descriptors(document: dict[str, Any]) -> None:
    """Each message's properties are its fields' JSON names (the proto3 JSON mapping), as the
    generated code's descriptors have them; enums list their value names."""
    seen: dict[str, Descriptor] = {}
    for method in SERVICE.methods:
        _messages(method.input_type, seen)
        _messages(method.output_type, seen)
    schemas = document["components"]["schemas"]
    for name, descriptor in seen.items():
        properties = schemas[name].get("properties", {})
        assert set(properties) == {field.json_name for field in descriptor.fields}, name
        for field in descriptor.fields:
            if field.enum_type is not None:
                enum = schemas[field.enum_type.full_name]
                assert enum["enum"] == [value.name for value in field.enum_type.values]
    assert schemas["rules_engine.v1.Case"]["properties"]["section47Enquiries"]["type"] == "array"
    assert "description" in schemas["rules_engine.v1.Case"]["properties"]["caseId"]  # .proto comments


def test_example_request_validates_against_the_evaluate_request_schema(document: dict[str, Any]) -> None:
    example = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    validator = _validator(document, "rules_engine.v1.EvaluateRequest")

    validator.validate(example)
    json_format.Parse(json.dumps(example), pb.EvaluateRequest())  # and the runtime agrees


def _wrong_requests() -> Iterator[tuple[str, dict[str, Any]]]:
    example = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    wrong = copy.deepcopy(example)
    wrong["case"]["caseId"] = 1001
    yield "caseId a number", wrong
    wrong = copy.deepcopy(example)
    wrong["case"]["concerns"] = {"id": "c1"}
    yield "concerns not a list", wrong
    wrong = copy.deepcopy(example)
    wrong["case"]["conferences"] = [{"id": "k1", "date": "2025-01-01", "kind": "CONFERENCE_KIND_BIG"}]
    yield "an enum value that does not exist", wrong
    wrong = copy.deepcopy(example)
    wrong["useStoredHistory"] = "yes"
    yield "a bool as a string", wrong
    wrong = copy.deepcopy(example)
    wrong["case"]["concerns"][0]["agnecy"] = wrong["case"]["concerns"][0].pop("agency")
    yield "a misspelt field", wrong


@pytest.mark.parametrize(("why", "request_body"), list(_wrong_requests()), ids=[w for w, _ in _wrong_requests()])
def test_a_wrong_request_does_not_validate(document: dict[str, Any], why: str, request_body: dict[str, Any]) -> None:
    validator = _validator(document, "rules_engine.v1.EvaluateRequest")

    assert not validator.is_valid(request_body), why
    with pytest.raises(json_format.ParseError):  # the protobuf runtime refuses it too
        json_format.Parse(json.dumps(request_body), pb.EvaluateRequest())


def test_the_proto_field_names_are_accepted_too(document: dict[str, Any]) -> None:
    validator = _validator(document, "rules_engine.v1.EvaluateRequest")
    proto_names = {"case": {"case_id": "case-1", "child": {"birth_date": "2016-05-14"}}, "as_of": "2025-06-02"}

    validator.validate(proto_names)
    json_format.Parse(json.dumps(proto_names), pb.EvaluateRequest())


def test_a_oneof_allows_one_member(document: dict[str, Any]) -> None:
    validator = _validator(document, "rules_engine.v1.MeasuredValue")

    assert validator.is_valid({"name": "concerns", "number": 3})
    assert not validator.is_valid({"name": "concerns", "number": 3, "text": "NEGLECT"})
    with pytest.raises(json_format.ParseError):
        json_format.Parse('{"name": "concerns", "number": 3, "text": "NEGLECT"}', pb.MeasuredValue())


def test_the_connect_error_body_is_described(document: dict[str, Any]) -> None:
    validator = _validator(document, "connect.error")
    error = {
        "code": "invalid_argument",
        "message": "case.concerns[0].date: not a date",
        "details": [
            {
                "type": "google.rpc.BadRequest",
                "value": "CiQKFmNhc2UuY29uY2VybnNbMF0uZGF0ZRIKbm90IGEgZGF0ZQ",
                "debug": {"fieldViolations": [{"field": "case.concerns[0].date", "description": "not a date"}]},
            }
        ],
    }

    validator.validate(error)
    assert not validator.is_valid({**error, "code": "INVALID_ARGUMENT"})


# -- a client generated from the document by a real generator ---------------------------------


@pytest.fixture(scope="module")
def generated_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """openapi-python-client's client for the document (about a second), importable as a package."""
    directory = tmp_path_factory.mktemp("openapi-client")
    config = directory / "config.yaml"
    config.write_text("post_hooks: []\n", encoding="utf-8")  # no formatter run: only imported here
    package = directory / "rules_engine_client"
    result = subprocess.run(
        [
            *(str(OPENAPI_PYTHON_CLIENT), "generate", "--path", str(DOCUMENT), "--meta", "none"),
            *("--config", str(config), "--output-path", str(package)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The one endpoint it leaves out is the server stream (its body is Connect envelopes).
    output = result.stdout + result.stderr
    skipped = [line for line in output.splitlines() if "Endpoint will not be generated" in line]
    assert len(skipped) == 1 and "EvaluateBatch" in skipped[0], output
    sys.path.insert(0, str(directory))
    try:
        yield importlib.import_module("rules_engine_client")
    finally:
        sys.path.remove(str(directory))
        for name in [n for n in sys.modules if n == "rules_engine_client" or n.startswith("rules_engine_client.")]:
            del sys.modules[name]


def _api(client_package: ModuleType, operation: str) -> Any:
    return importlib.import_module(f"{client_package.__name__}.api.rules_engine_v_1_rules_engine_service.{operation}")


def test_the_generated_client_has_every_unary_rpc_and_round_trips_the_example(generated_client: ModuleType) -> None:
    for method in SERVICE.methods:
        if not method.server_streaming:
            _api(generated_client, _snake(method.name))
    _api(generated_client, "list_rulesets_get")
    models = importlib.import_module(f"{generated_client.__name__}.models")
    example = json.loads(EXAMPLE.read_text(encoding="utf-8"))

    body = models.RulesEngineV1EvaluateRequest.from_dict(example)
    kwargs = _api(generated_client, "evaluate")._get_kwargs(body=body)

    assert kwargs["url"] == f"/{SERVICE.full_name}/Evaluate"
    assert kwargs["json"] == example


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(name))


def _http_door_exists() -> bool:
    modules = ("rules_engine.server.http", "rules_engine.service.connect_servicer")
    return all(importlib.util.find_spec(module) is not None for module in modules)


needs_the_http_door = pytest.mark.skipif(
    not _http_door_exists(),
    reason="the HTTP door (server/http.py and service/connect_servicer.py, `serve --http-port`) has not landed yet",
)


@pytest.fixture(scope="module")
def live_door() -> Iterator[tuple[int, int]]:
    """`rules-engine serve` with both doors on free ports: (gRPC port, HTTP port)."""
    port, http_port = free_port(), free_port()
    args = ["--rulesets", "rulesets", "--default-ruleset", "safeguarding", "--http-port", str(http_port)]
    args += ["--metrics-port", "0"]
    with serve(port, *args):
        yield port, http_port


@needs_the_http_door
def test_the_generated_client_calls_the_running_service(
    generated_client: ModuleType, live_door: tuple[int, int]
) -> None:
    """The generated client's Evaluate gets the flags the gRPC door gives for the same request, its
    GET ListRulesets lists the rulesets, and the door serves this document at /openapi.json."""
    port, http_port = live_door
    example = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    models = importlib.import_module(f"{generated_client.__name__}.models")
    with generated_client.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=30) as client:
        answer = _api(generated_client, "evaluate").sync_detailed(
            client=client,
            body=models.RulesEngineV1EvaluateRequest.from_dict(example),
            connect_protocol_version=models.EvaluateConnectProtocolVersion("1"),
        )
        listed = _api(generated_client, "list_rulesets_get").sync_detailed(
            client=client, encoding=models.ListRulesetsGetEncoding("json"), message="{}"
        )
        served = client.get_httpx_client().get("/openapi.json")
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        over_grpc = pb_grpc.RulesEngineServiceStub(channel).Evaluate(
            json_format.Parse(json.dumps(example), pb.EvaluateRequest()), timeout=30
        )

    assert answer.status_code == 200, answer.content
    evaluation = answer.parsed
    assert isinstance(evaluation, models.RulesEngineV1EvaluateResponse)
    assert [flag.rule_id for flag in evaluation.flags] == [flag.rule_id for flag in over_grpc.flags]
    assert evaluation.flags, "the example raises flags"
    assert evaluation.case_id == over_grpc.case_id
    assert listed.status_code == 200, listed.content
    assert {ruleset.name for ruleset in listed.parsed.rulesets} >= {"safeguarding"}
    assert served.status_code == 200
    assert served.json() == json.loads(DOCUMENT.read_text(encoding="utf-8"))


SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
# No 5xx, and every response as the document says (status, content type, body schema, headers).
SCHEMATHESIS_CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
]


@needs_the_http_door
def test_schemathesis_finds_no_server_error_and_no_response_off_the_document(
    live_door: tuple[int, int], tmp_path: Path
) -> None:
    """A bounded property-based run (positive and negative cases) over every unary operation.

    Connect-Timeout-Ms is pinned to a minute: a generated deadline of a few milliseconds would
    end a call with deadline_exceeded, which Connect answers as 504 by design, not a fault.
    EvaluateBatch is left out: its body is Connect envelopes, which no OpenAPI schema checks
    (tests/e2e/test_http_door.py covers the stream)."""
    _, http_port = live_door
    command = [
        *(str(SCHEMATHESIS), "run", str(DOCUMENT), "--url", f"http://127.0.0.1:{http_port}"),
        *("--checks", ",".join(SCHEMATHESIS_CHECKS), "--exclude-path-regex", "EvaluateBatch"),
        *("--max-examples", "25", "--seed", "17", "--no-color"),  # about 3,000 requests; --max-time would fuzz on
        *("--header", "Connect-Timeout-Ms: 60000", "--generation-database", "none"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path)

    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "Tested: 10" in result.stdout, result.stdout[-4000:]  # GetEqualityReport by POST and GET too


# -- the mapping rules on types the service's .proto files do not use (yet) -------------------

MAPPING_PROTO = """
syntax = "proto3";
package mapping.v1;
import "google/protobuf/timestamp.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/wrappers.proto";
import "google/protobuf/struct.proto";

// A thing with every kind of field.
message Thing {
  int64 big = 1;
  uint64 bigger = 2;
  map<string, int32> counts = 3;
  map<int64, Part> parts = 4;
  google.protobuf.Timestamp at = 5;
  google.protobuf.Duration took = 6;
  google.protobuf.Int64Value maybe_big = 7;
  google.protobuf.Struct extra = 8;
  optional string note = 9;
  oneof choice {
    string word = 10;
    Part part = 11;
  }
  bytes blob = 12;
  repeated Kind kinds = 13;
  Thing child = 14;
}

message Part { string name = 1; }

enum Kind {
  KIND_UNSPECIFIED = 0;
  // The first kind.
  KIND_ONE = 1;
}

service MappingService {
  rpc Get(Thing) returns (Thing) { option idempotency_level = NO_SIDE_EFFECTS; }
  rpc Watch(Thing) returns (stream Thing);
}
"""


@pytest.fixture(scope="module")
def mapping(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Any]:
    """The document and the compiled descriptor set for MAPPING_PROTO."""
    proto_dir = tmp_path_factory.mktemp("proto")
    (proto_dir / "mapping" / "v1").mkdir(parents=True)
    (proto_dir / "mapping" / "v1" / "mapping.proto").write_text(MAPPING_PROTO, encoding="utf-8")
    builder = _load_builder()
    document = builder.build_document(proto_dir)
    validate(document, cls=OpenAPIV31SpecValidator)
    return document, builder.compile_protos(proto_dir)


def test_proto3_json_mapping_of_the_field_types(mapping: tuple[dict[str, Any], Any]) -> None:
    document, _ = mapping
    schemas = document["components"]["schemas"]
    thing = schemas["mapping.v1.Thing"]["properties"]

    assert thing["big"]["type"] == "string" and thing["big"]["format"] == "int64"
    assert thing["counts"] == {"type": "object", "additionalProperties": {**thing["counts"]["additionalProperties"]}}
    assert thing["counts"]["additionalProperties"]["format"] == "int32"
    assert thing["parts"]["propertyNames"] == {"pattern": "^-?[0-9]+$"}
    assert thing["parts"]["additionalProperties"] == {"$ref": "#/components/schemas/mapping.v1.Part"}
    assert schemas["google.protobuf.Timestamp"]["format"] == "date-time"
    assert schemas["google.protobuf.Int64Value"]["type"] == "string"
    assert thing["maybeBig"] == {"$ref": "#/components/schemas/google.protobuf.Int64Value"}
    assert thing["kinds"]["items"] == {"$ref": "#/components/schemas/mapping.v1.Kind"}
    assert schemas["mapping.v1.Kind"]["enum"] == ["KIND_UNSPECIFIED", "KIND_ONE"]
    assert "`KIND_ONE`: The first kind." in schemas["mapping.v1.Kind"]["description"]
    assert schemas["mapping.v1.Thing"]["description"] == "A thing with every kind of field."
    # The oneof, not the synthetic one of `optional note`.
    assert schemas["mapping.v1.Thing"]["not"] == {"anyOf": [{"required": ["word", "part"]}]}
    paths = document["paths"]
    assert set(paths["/mapping.v1.MappingService/Get"]) == {"get", "post"}
    assert paths["/mapping.v1.MappingService/Watch"]["post"]["x-connect-streaming"] == "server"


def test_the_runtimes_json_validates_against_the_schema(mapping: tuple[dict[str, Any], Any]) -> None:
    """A message filled in every field, printed by protobuf's own JSON printer, is valid; so the
    schemas describe what the proto3 JSON mapping produces."""
    from google.protobuf import descriptor_pool, message_factory

    document, files = mapping
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.AddSerializedFile(file.SerializeToString())
    thing_class = message_factory.GetMessageClass(pool.FindMessageTypeByName("mapping.v1.Thing"))
    text = json.dumps(
        {
            "big": "-9007199254740993",
            "bigger": "18446744073709551615",
            "counts": {"a": 1},
            "parts": {"7": {"name": "p"}},
            "at": "2025-06-02T09:30:00Z",
            "took": "1.500s",
            "maybeBig": "5",
            "extra": {"any": ["json", 1, None]},
            "note": "",
            "part": {"name": "q"},
            "blob": "AAE=",
            "kinds": ["KIND_ONE"],
            "child": {"word": "w"},
        }
    )
    message = json_format.Parse(text, thing_class())
    printed = json_format.MessageToDict(message)

    _validator(document, "mapping.v1.Thing").validate(printed)
    assert printed["big"] == "-9007199254740993" and printed["note"] == ""
