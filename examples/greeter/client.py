#!/usr/bin/python3
"""Calls the greeter with grpcio (Debian's python3-grpcio): client.py ADDRESS NAME.

Message classes come from protoc --python_out at start-up, and the calls go
through grpcio's generic multi-callables, so no grpc_tools are needed.
"""
import os
import subprocess
import sys
import tempfile

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    address, name = sys.argv[1], sys.argv[2]
    out = tempfile.mkdtemp(prefix="greeter-py-")
    subprocess.run(["protoc", "-I", os.path.join(HERE, "proto"), "--python_out", out,
                    "greeter/v1/greeter.proto"], check=True)
    sys.path.insert(0, out)
    from greeter.v1 import greeter_pb2 as pb  # noqa: E402

    with grpc.insecure_channel(address) as channel:
        hello = channel.unary_unary("/greeter.v1.Greeter/SayHello",
                                    request_serializer=pb.HelloRequest.SerializeToString,
                                    response_deserializer=pb.HelloReply.FromString)
        hellos = channel.unary_stream("/greeter.v1.Greeter/SayHellos",
                                      request_serializer=pb.HelloRequest.SerializeToString,
                                      response_deserializer=pb.HelloReply.FromString)
        req = pb.HelloRequest(name=name, count=3)
        print(hello(req, timeout=10).message)
        for reply in hellos(req, timeout=10):
            print(reply.message)


if __name__ == "__main__":
    main()
