// The gRPC C++ peer for benchmarks: bench.v1.Echo on the callback API
// (Debian's libgrpc++), h2c on 127.0.0.1. --port=N. Not under test; built only
// to be measured beside paywire.
#include <grpcpp/grpcpp.h>

#include <iostream>
#include <string>

#include "bench/v1/echo.grpc.pb.h"

using bench::v1::EchoReply;
using bench::v1::EchoRequest;
using bench::v1::StreamRequest;

namespace
{

class StreamWriter : public grpc::ServerWriteReactor<EchoReply>
{
  public:
    explicit StreamWriter(const StreamRequest *req) : left_(req->count())
    {
        reply_.set_payload(std::string(req->payload_size(), '\0'));
        Next();
    }
    void OnWriteDone(bool ok) override
    {
        if (!ok) {
            Finish(grpc::Status(grpc::StatusCode::UNKNOWN, "write failed"));
            return;
        }
        Next();
    }
    void OnDone() override
    {
        delete this;
    }

  private:
    void Next()
    {
        if (left_ == 0) {
            Finish(grpc::Status::OK);
            return;
        }
        left_--;
        StartWrite(&reply_);
    }
    uint32_t left_;
    EchoReply reply_;
};

class BidiEcho : public grpc::ServerBidiReactor<EchoRequest, EchoReply>
{
  public:
    BidiEcho()
    {
        StartRead(&req_);
    }
    void OnReadDone(bool ok) override
    {
        if (!ok) {
            Finish(grpc::Status::OK);
            return;
        }
        reply_.set_payload(req_.payload());
        StartWrite(&reply_);
    }
    void OnWriteDone(bool ok) override
    {
        if (!ok) {
            Finish(grpc::Status(grpc::StatusCode::UNKNOWN, "write failed"));
            return;
        }
        StartRead(&req_);
    }
    void OnDone() override
    {
        delete this;
    }

  private:
    EchoRequest req_;
    EchoReply reply_;
};

class EchoService final : public bench::v1::Echo::CallbackService
{
    grpc::ServerUnaryReactor *Unary(grpc::CallbackServerContext *ctx, const EchoRequest *req,
                                    EchoReply *reply) override
    {
        reply->set_payload(req->payload());
        auto *r = ctx->DefaultReactor();
        r->Finish(grpc::Status::OK);
        return r;
    }
    grpc::ServerWriteReactor<EchoReply> *ServerStream(grpc::CallbackServerContext *,
                                                      const StreamRequest *req) override
    {
        return new StreamWriter(req);
    }
    grpc::ServerBidiReactor<EchoRequest, EchoReply> *
    BidiStream(grpc::CallbackServerContext *) override
    {
        return new BidiEcho();
    }
};

} // namespace

int main(int argc, char **argv)
{
    std::string port = "50052";
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (a.rfind("--port=", 0) == 0) {
            port = a.substr(7);
        }
    }
    EchoService service;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:" + port, grpc::InsecureServerCredentials());
    builder.RegisterService(&service);
    auto server = builder.BuildAndStart();
    if (!server) {
        std::cerr << "grpcpp-bench-echo: cannot listen" << std::endl;
        return 1;
    }
    server->Wait();
    return 0;
}
