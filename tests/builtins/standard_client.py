#!/usr/bin/python3
"""A standard gRPC client (Debian's python3-grpcio) against a paywire server's
built-in services: health (Check, Watch) and server reflection v1 and
v1alpha. Reflection answers are checked by building a protobuf descriptor
pool from the returned files alone.   standard_client.py PORT"""
import os
import subprocess
import sys
import tempfile

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..", "proto")
out = tempfile.mkdtemp(prefix="pw-builtins-py-")
subprocess.run(["protoc", "-I", ROOT, "--python_out", out,
                "src/proto/grpc/health/v1/health.proto",
                "src/proto/grpc/reflection/v1/reflection.proto",
                "src/proto/grpc/reflection/v1alpha/reflection.proto",
                "src/proto/grpc/testing/messages.proto",
                "google/rpc/status.proto", "google/rpc/error_details.proto"], check=True)
sys.path.insert(0, out)
from src.proto.grpc.health.v1 import health_pb2  # noqa: E402
from src.proto.grpc.reflection.v1 import reflection_pb2 as r1  # noqa: E402
from src.proto.grpc.reflection.v1alpha import reflection_pb2 as r1a  # noqa: E402
from src.proto.grpc.testing import messages_pb2  # noqa: E402
from google.rpc import status_pb2, error_details_pb2  # noqa: E402

failures = []


def check(cond, what):
    print(("PASS " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


channel = grpc.insecure_channel("127.0.0.1:%s" % sys.argv[1])
hc = channel.unary_unary("/grpc.health.v1.Health/Check",
                         request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                         response_deserializer=health_pb2.HealthCheckResponse.FromString)
SERVING = health_pb2.HealthCheckResponse.SERVING
check(hc(health_pb2.HealthCheckRequest(service="")).status == SERVING, "health Check '' is SERVING")
check(hc(health_pb2.HealthCheckRequest(service="grpc.testing.TestService")).status == SERVING,
      "health Check grpc.testing.TestService is SERVING")
try:
    hc(health_pb2.HealthCheckRequest(service="no.such.Service"))
    check(False, "health Check of an unknown service fails")
except grpc.RpcError as e:
    check(e.code() == grpc.StatusCode.NOT_FOUND, "health Check of an unknown service is NOT_FOUND")

watch = channel.unary_stream("/grpc.health.v1.Health/Watch",
                             request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                             response_deserializer=health_pb2.HealthCheckResponse.FromString)
w = watch(health_pb2.HealthCheckRequest(service=""))
check(next(w).status == SERVING, "health Watch '' starts with SERVING")
w.cancel()


def reflect(mod, version, requests):
    call = channel.stream_stream(
        "/grpc.reflection.%s.ServerReflection/ServerReflectionInfo" % version,
        request_serializer=mod.ServerReflectionRequest.SerializeToString,
        response_deserializer=mod.ServerReflectionResponse.FromString)
    return list(call(iter(requests)))


for mod, version in ((r1, "v1"), (r1a, "v1alpha")):
    resps = reflect(mod, version, [
        mod.ServerReflectionRequest(list_services=""),
        mod.ServerReflectionRequest(file_containing_symbol="grpc.testing.TestService"),
        mod.ServerReflectionRequest(file_containing_symbol="grpc.testing.SimpleRequest"),
        mod.ServerReflectionRequest(file_by_filename="src/proto/grpc/health/v1/health.proto"),
        mod.ServerReflectionRequest(file_containing_symbol="no.such.Symbol"),
    ])
    check(len(resps) == 5, "%s: one response per request" % version)
    names = {s.name for s in resps[0].list_services_response.service}
    check({"grpc.testing.TestService", "grpc.health.v1.Health",
           "grpc.reflection.v1.ServerReflection",
           "grpc.reflection.v1alpha.ServerReflection"} <= names,
          "%s: ListServices names every service (%s)" % (version, sorted(names)))
    pool = descriptor_pool.DescriptorPool()
    files = {}
    for r in resps[1:4]:
        for blob in r.file_descriptor_response.file_descriptor_proto:
            fd = descriptor_pb2.FileDescriptorProto.FromString(blob)
            files[fd.name] = fd
    added = set()

    def add(name):
        if name in added:
            return
        for dep in files[name].dependency:
            add(dep)
        pool.Add(files[name])
        added.add(name)

    try:
        for name in files:
            add(name)
        svc = pool.FindServiceByName("grpc.testing.TestService")
        msg = pool.FindMessageTypeByName("grpc.testing.SimpleRequest")
        hl = pool.FindServiceByName("grpc.health.v1.Health")
        check(len(svc.methods) == 8 and msg.fields_by_name["response_size"].number == 2 and
              len(hl.methods) == 2,
              "%s: returned files build a descriptor pool with the service, messages and imports"
              % version)
    except KeyError as e:
        check(False, "%s: descriptor pool is missing %s" % (version, e))
    err = resps[4].error_response
    check(err.error_code == 5 and "no.such.Symbol" in err.error_message,
          "%s: unknown symbol is NOT_FOUND (%s)" % (version, err.error_message))

# Rich error details from a failing call, decoded the standard way.
uc = channel.unary_unary("/grpc.testing.TestService/UnaryCall",
                         request_serializer=messages_pb2.SimpleRequest.SerializeToString,
                         response_deserializer=messages_pb2.SimpleResponse.FromString)
req = messages_pb2.SimpleRequest()
req.response_status.code = 3
req.response_status.message = "bad request"
try:
    uc(req, metadata=[("x-paywire-test-details", "1")])
    check(False, "the call fails")
except grpc.RpcError as e:
    blob = dict(e.trailing_metadata()).get("grpc-status-details-bin")
    st = status_pb2.Status.FromString(blob) if blob else None
    check(st is not None and st.code == 3 and st.message == "bad request",
          "grpc-status-details-bin holds a google.rpc.Status")
    br = error_details_pb2.BadRequest()
    ok = st is not None and any(d.Unpack(br) for d in st.details)
    check(ok and br.field_violations[0].field == "response_size",
          "details decode as google.rpc.BadRequest naming the field")

channel.close()
print("standard client: %d checks failed" % len(failures))
sys.exit(1 if failures else 0)
