"""A stand-in for the grpcurl calls the README shows, for machines without grpcurl: server reflection only.

Takes grpcurl's own arguments for a unary call: `[-plaintext] [-d DATA|-d @] ADDRESS SERVICE/METHOD`
(`@` reads the request from stdin). It asks the server's reflection for the method, as grpcurl
does, so it needs no .proto files either, and prints the response as proto3 JSON.
"""

from __future__ import annotations

import sys

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase


def main(argv: list[str]) -> int:
    data, positional, plaintext = "", [], False
    args = iter(argv)
    for arg in args:
        if arg == "-plaintext":
            plaintext = True
        elif arg == "-d":
            data = next(args)
        else:
            positional.append(arg)
    if not plaintext:
        print("the stand-in speaks plaintext only", file=sys.stderr)
        return 2
    address, target = positional
    if data == "@":
        data = sys.stdin.read()
    service_name, method_name = target.split("/")
    with grpc.insecure_channel(address) as channel:
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        method = pool.FindServiceByName(service_name).FindMethodByName(method_name)
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        call = channel.unary_unary(
            f"/{service_name}/{method_name}",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        try:
            response = call(json_format.Parse(data, request_class()), timeout=30)
        except grpc.RpcError as exc:
            print(f"ERROR:\n  Code: {exc.code().name}\n  Message: {exc.details()}", file=sys.stderr)
            return 1
    print(json_format.MessageToJson(response))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
