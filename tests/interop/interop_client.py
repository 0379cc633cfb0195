#!/usr/bin/python3
"""gRPC interop client on Debian's python3-grpcio: the standard cases, gRPC's flags.

Runs against any grpc.testing.TestService server. Message classes are
generated at start-up with protoc from the project's proto/ folder, and calls
go through grpcio's generic multi-callables, so no grpc_tools are needed.
Prints one line per case and exits non-zero if any case fails.
"""
import argparse
import os
import queue
import subprocess
import sys
import tempfile
import threading

import grpc

from wire_tap import WireTap

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.join(HERE, "..", "..", "proto")


def load_messages():
    out = tempfile.mkdtemp(prefix="pw-interop-py-")
    protos = ["src/proto/grpc/testing/empty.proto", "src/proto/grpc/testing/messages.proto"]
    subprocess.run(["protoc", "-I", PROTO_ROOT, "--python_out", out] + protos, check=True)
    sys.path.insert(0, out)
    from src.proto.grpc.testing import empty_pb2, messages_pb2  # noqa: E402
    return empty_pb2, messages_pb2


empty_pb2, messages = load_messages()
TS = "/grpc.testing.TestService/"


class Stub:
    def __init__(self, channel):
        def uu(name, req, resp):
            return channel.unary_unary(TS + name, request_serializer=req.SerializeToString,
                                       response_deserializer=resp.FromString)

        self.empty = uu("EmptyCall", empty_pb2.Empty, empty_pb2.Empty)
        self.unary = uu("UnaryCall", messages.SimpleRequest, messages.SimpleResponse)
        self.unimplemented = uu("UnimplementedCall", empty_pb2.Empty, empty_pb2.Empty)
        self.unimplemented_service = channel.unary_unary(
            "/grpc.testing.UnimplementedService/UnimplementedCall",
            request_serializer=empty_pb2.Empty.SerializeToString,
            response_deserializer=empty_pb2.Empty.FromString)
        self.stream_out = channel.unary_stream(
            TS + "StreamingOutputCall",
            request_serializer=messages.StreamingOutputCallRequest.SerializeToString,
            response_deserializer=messages.StreamingOutputCallResponse.FromString)
        self.stream_in = channel.stream_unary(
            TS + "StreamingInputCall",
            request_serializer=messages.StreamingInputCallRequest.SerializeToString,
            response_deserializer=messages.StreamingInputCallResponse.FromString)
        self.duplex = channel.stream_stream(
            TS + "FullDuplexCall",
            request_serializer=messages.StreamingOutputCallRequest.SerializeToString,
            response_deserializer=messages.StreamingOutputCallResponse.FromString)


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def zeros(n):
    return messages.Payload(body=b"\0" * n)


def duplex_req(resp_size=None, req_size=0, status=None):
    r = messages.StreamingOutputCallRequest(payload=zeros(req_size))
    if resp_size is not None:
        r.response_parameters.add(size=resp_size)
    if status is not None:
        r.response_status.CopyFrom(status)
    return r


class Pipe:
    """A request iterator fed from the test thread, for interleaved streams."""

    _END = object()

    def __init__(self):
        self.q = queue.Queue()

    def send(self, item):
        self.q.put(item)

    def close(self):
        self.q.put(self._END)

    def __iter__(self):
        return self

    def __next__(self):
        item = self.q.get()
        if item is self._END:
            raise StopIteration
        return item


def empty_unary(s):
    check(isinstance(s.empty(empty_pb2.Empty()), empty_pb2.Empty), "not Empty")


def large_unary(s):
    r = s.unary(messages.SimpleRequest(response_size=314159, payload=zeros(271828)))
    check(r.payload.body == b"\0" * 314159, "payload size %d" % len(r.payload.body))


def client_streaming(s):
    reqs = [messages.StreamingInputCallRequest(payload=zeros(n)) for n in (27182, 8, 1828, 45904)]
    r = s.stream_in(iter(reqs))
    check(r.aggregated_payload_size == 74922, "aggregated %d" % r.aggregated_payload_size)


def server_streaming(s):
    sizes = [31415, 9, 2653, 58979]
    req = messages.StreamingOutputCallRequest()
    for n in sizes:
        req.response_parameters.add(size=n)
    got = [len(r.payload.body) for r in s.stream_out(req)]
    check(got == sizes, "sizes %s" % got)


def ping_pong(s):
    pipe = Pipe()
    call = s.duplex(pipe)
    for resp, req in ((31415, 27182), (9, 8), (2653, 1828), (58979, 45904)):
        pipe.send(duplex_req(resp, req))
        r = next(call)
        check(len(r.payload.body) == resp, "got %d want %d" % (len(r.payload.body), resp))
    pipe.close()
    check(next(call, None) is None, "extra response")
    check(call.code() == grpc.StatusCode.OK, "status %s" % call.code())


def empty_stream(s):
    call = s.duplex(iter([]))
    check(list(call) == [], "responses on an empty stream")
    check(call.code() == grpc.StatusCode.OK, "status %s" % call.code())


ECHO_INITIAL = ("x-grpc-test-echo-initial", "test_initial_metadata_value")
ECHO_TRAILING = ("x-grpc-test-echo-trailing-bin", b"\xab\xab\xab")


def check_echo(initial, trailing):
    check(ECHO_INITIAL in [tuple(m) for m in initial], "initial metadata %s" % (initial,))
    check(ECHO_TRAILING in [tuple(m) for m in trailing], "trailing metadata %s" % (trailing,))


def custom_metadata(s):
    md = [ECHO_INITIAL, ECHO_TRAILING]
    r, call = s.unary.with_call(messages.SimpleRequest(response_size=314159, payload=zeros(271828)),
                                metadata=md)
    check(len(r.payload.body) == 314159, "unary payload")
    check_echo(call.initial_metadata(), call.trailing_metadata())
    call = s.duplex(iter([duplex_req(314159, 271828)]), metadata=md)
    got = [len(x.payload.body) for x in call]
    check(got == [314159], "duplex sizes %s" % got)
    check_echo(call.initial_metadata(), call.trailing_metadata())


def expect_error(fn, code, details=None):
    try:
        fn()
    except grpc.RpcError as e:
        check(e.code() == code, "code %s want %s (%s)" % (e.code(), code, e.details()))
        if details is not None:
            check(e.details() == details, "details %r want %r" % (e.details(), details))
        return
    raise Fail("call succeeded, want %s" % code)


def status_case(s, text):
    st = messages.EchoStatus(code=2, message=text)
    expect_error(lambda: s.unary(messages.SimpleRequest(response_status=st)),
                 grpc.StatusCode.UNKNOWN, text)
    expect_error(lambda: list(s.duplex(iter([duplex_req(status=st)]))),
                 grpc.StatusCode.UNKNOWN, text)


def status_code_and_message(s):
    status_case(s, "test status message")


def special_status_message(s):
    status_case(s, "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n")


def unimplemented_method(s):
    expect_error(lambda: s.unimplemented(empty_pb2.Empty()), grpc.StatusCode.UNIMPLEMENTED)


def unimplemented_service(s):
    expect_error(lambda: s.unimplemented_service(empty_pb2.Empty()), grpc.StatusCode.UNIMPLEMENTED)


def cancel_after_begin(s):
    pipe = Pipe()
    fut = s.stream_in.future(pipe)
    fut.cancel()
    pipe.close()
    check(fut.cancelled(), "future not cancelled")
    check(fut.code() == grpc.StatusCode.CANCELLED, "status %s" % fut.code())


def cancel_after_first_response(s):
    pipe = Pipe()
    call = s.duplex(pipe)
    pipe.send(duplex_req(31415, 27182))
    check(len(next(call).payload.body) == 31415, "first response size")
    call.cancel()
    pipe.close()
    check(call.code() == grpc.StatusCode.CANCELLED, "status %s" % call.code())


def timeout_on_sleeping_server(s):
    pipe = Pipe()
    call = s.duplex(pipe, timeout=0.001)
    pipe.send(duplex_req(None, 27182))
    expect_error(lambda: list(call), grpc.StatusCode.DEADLINE_EXCEEDED)
    pipe.close()


def client_compressed_unary(s):
    req = messages.SimpleRequest(response_size=314159, payload=zeros(271828))
    req.expect_compressed.value = True
    # The probe: an uncompressed request claiming to be compressed is rejected.
    expect_error(lambda: s.unary(req), grpc.StatusCode.INVALID_ARGUMENT)
    r = s.unary(req, compression=grpc.Compression.Gzip)
    check(len(r.payload.body) == 314159, "compressed request: payload %d" % len(r.payload.body))


def server_compressed_unary(s):
    req = messages.SimpleRequest(response_size=314159)
    req.response_compressed.value = True
    r = s.unary(req)
    check(r.payload.body == b"\0" * 314159, "compressed response: payload %d" % len(r.payload.body))


def input_requests(sizes, expect):
    for n in sizes:
        r = messages.StreamingInputCallRequest(payload=zeros(n))
        r.expect_compressed.value = expect
        yield r


def client_compressed_streaming(s):
    # The probe: an uncompressed message that expects compression is refused.
    expect_error(lambda: s.stream_in(input_requests([27182], True)),
                 grpc.StatusCode.INVALID_ARGUMENT)
    # grpcio compresses all of a call's messages or none (its API has no per-message
    # opt-out; the gRPC C++ and paywire clients send the mixed stream): the server
    # checks each message's flag against expect_compressed, both ways.
    for compression, expect in ((grpc.Compression.Gzip, True), (grpc.Compression.NoCompression,
                                                                False)):
        r = s.stream_in(input_requests([27182, 45904], expect), compression=compression)
        check(r.aggregated_payload_size == 73086,
              "expect_compressed=%s: aggregated %d" % (expect, r.aggregated_payload_size))


def server_compressed_streaming(s):
    # The first response compressed, the second not, on one stream: grpcio must take
    # both. It does not show a message's compressed flag, so the call goes through a
    # relay that reads the flags on the wire.
    del s
    tap = WireTap(PEER["server"], PEER["tap_tls"])
    channel = open_channel("%s:%d" % tap.address)
    req = messages.StreamingOutputCallRequest()
    for size, compressed in ((31415, True), (92653, False)):
        req.response_parameters.add(size=size).compressed.value = compressed
    try:
        got = [r.payload.body for r in Stub(channel).stream_out(req)]
    finally:
        channel.close()
        tap.close()
    check([len(b) for b in got] == [31415, 92653] and all(b == b"\0" * len(b) for b in got),
          "responses of %s bytes" % [len(b) for b in got])
    # On the wire: (compressed flag, length) of each message the server sent.
    wire = [m for m in tap.seen.all() if len(m) == 2]
    check(any(m[0][0] == 1 and m[0][1] < 31415 and m[1][0] == 0 and m[1][1] > 92653
              for m in wire), "server messages on the wire: %s" % tap.seen.all())


CASES = [empty_unary, large_unary, client_streaming, server_streaming, ping_pong, empty_stream,
         custom_metadata, status_code_and_message, special_status_message, unimplemented_method,
         unimplemented_service, cancel_after_begin, cancel_after_first_response,
         timeout_on_sleeping_server, client_compressed_unary, server_compressed_unary,
         client_compressed_streaming, server_compressed_streaming]


# How to reach the server (filled from the flags): address, credentials, relay TLS.
PEER = {"server": None, "creds": None, "options": [], "tap_tls": None}


def open_channel(target):
    if PEER["creds"] is None:
        return grpc.insecure_channel(target)
    return grpc.secure_channel(target, PEER["creds"], options=PEER["options"])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--server_host", default="127.0.0.1")
    p.add_argument("--server_port", type=int, default=10000)
    p.add_argument("--test_case", default="all")
    p.add_argument("--use_tls", default="false")
    p.add_argument("--ca_file")
    p.add_argument("--server_host_override")
    a = p.parse_args()
    PEER["server"] = (a.server_host, a.server_port)
    if a.use_tls in ("true", "1"):
        with open(a.ca_file, "rb") as f:
            PEER["creds"] = grpc.ssl_channel_credentials(root_certificates=f.read())
        if a.server_host_override:
            PEER["options"].append(("grpc.ssl_target_name_override", a.server_host_override))
        # The relay presents the test server certificate (make_certs.sh, next to the CA).
        certs = os.path.dirname(a.ca_file)
        PEER["tap_tls"] = (a.ca_file, os.path.join(certs, "server.pem"),
                           os.path.join(certs, "server.key"),
                           a.server_host_override or a.server_host)
    channel = open_channel("%s:%d" % PEER["server"])
    stub = Stub(channel)
    cases = [c for c in CASES if a.test_case in ("all", c.__name__)]
    if not cases:
        print("unknown test case %s" % a.test_case, file=sys.stderr)
        return 2
    failed = 0
    for case in cases:
        try:
            case(stub)
            print("PASS %s" % case.__name__)
        except (Fail, grpc.RpcError) as e:
            failed += 1
            print("FAIL %s: %s" % (case.__name__, e))
        sys.stdout.flush()
    channel.close()
    print("%d passed, %d failed" % (len(cases) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
