// Reference interop server on gRPC C++ (Debian's libgrpc++), used only by tests:
// the paywire interop client is run against it. Implements grpc.testing.TestService
// as gRPC's interop test descriptions require, per-message compression included
// (expect_compressed checked on each request's compressed flag, compressed
// responses chosen one by one). Flags: --port=N [--use_tls --tls_cert=PEM --tls_key=PEM].
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>

#include "ref_common.h"
#include "src/proto/grpc/testing/test.grpc.pb.h"

using grpc::ServerContext;
using grpc::Status;
using namespace grpc::testing;
using pw_ref::Flag;
using pw_ref::ReadFile;

namespace
{

// expect_compressed, when present, must match the request's compressed flag.
bool ExpectationMet(ServerContext *ctx, bool has_expect, bool expect)
{
    return !has_expect || pw_ref::WasCompressed(ctx->c_call()) == expect;
}

const Status kExpectationNotMet(grpc::StatusCode::INVALID_ARGUMENT,
                                "compressed flag does not match expect_compressed");

// Compressed responses as gRPC's interop server chooses them: gzip for the call
// as soon as a parameter says anything, and a message opts out when it says false.
grpc::WriteOptions ResponseOptions(ServerContext *ctx, const ResponseParameters &p)
{
    grpc::WriteOptions wo;
    if (p.has_compressed()) {
        ctx->set_compression_algorithm(GRPC_COMPRESS_GZIP);
        if (!p.compressed().value()) {
            wo.set_no_compression();
        }
    }
    return wo;
}

void EchoMetadata(ServerContext *ctx)
{
    const auto &md = ctx->client_metadata();
    auto it = md.find("x-grpc-test-echo-initial");
    if (it != md.end()) {
        ctx->AddInitialMetadata("x-grpc-test-echo-initial",
                                std::string(it->second.data(), it->second.size()));
    }
    it = md.find("x-grpc-test-echo-trailing-bin");
    if (it != md.end()) {
        ctx->AddTrailingMetadata("x-grpc-test-echo-trailing-bin",
                                 std::string(it->second.data(), it->second.size()));
    }
}

class TestServiceImpl final : public TestService::Service
{
    Status EmptyCall(ServerContext *ctx, const Empty *, Empty *) override
    {
        EchoMetadata(ctx);
        return Status::OK;
    }

    Status UnaryCall(ServerContext *ctx, const SimpleRequest *req, SimpleResponse *resp) override
    {
        EchoMetadata(ctx);
        if (req->has_response_status() && req->response_status().code() != 0) {
            return Status(static_cast<grpc::StatusCode>(req->response_status().code()),
                          req->response_status().message());
        }
        if (!ExpectationMet(ctx, req->has_expect_compressed(), req->expect_compressed().value())) {
            return kExpectationNotMet;
        }
        if (req->response_compressed().value()) {
            ctx->set_compression_algorithm(GRPC_COMPRESS_GZIP);
        }
        resp->mutable_payload()->set_body(std::string(req->response_size(), '\0'));
        return Status::OK;
    }

    Status StreamingOutputCall(ServerContext *ctx, const StreamingOutputCallRequest *req,
                               grpc::ServerWriter<StreamingOutputCallResponse> *w) override
    {
        EchoMetadata(ctx);
        for (const auto &p : req->response_parameters()) {
            if (p.interval_us() > 0) {
                std::this_thread::sleep_for(std::chrono::microseconds(p.interval_us()));
            }
            StreamingOutputCallResponse r;
            r.mutable_payload()->set_body(std::string(p.size(), '\0'));
            w->Write(r, ResponseOptions(ctx, p));
        }
        return Status::OK;
    }

    Status StreamingInputCall(ServerContext *ctx, grpc::ServerReader<StreamingInputCallRequest> *r,
                              StreamingInputCallResponse *resp) override
    {
        StreamingInputCallRequest req;
        int total = 0;
        while (r->Read(&req)) {
            if (!ExpectationMet(ctx, req.has_expect_compressed(),
                                req.expect_compressed().value())) {
                return kExpectationNotMet;
            }
            total += static_cast<int>(req.payload().body().size());
        }
        resp->set_aggregated_payload_size(total);
        return Status::OK;
    }

    Status FullDuplexCall(ServerContext *ctx,
                          grpc::ServerReaderWriter<StreamingOutputCallResponse,
                                                   StreamingOutputCallRequest> *s) override
    {
        EchoMetadata(ctx);
        StreamingOutputCallRequest req;
        while (s->Read(&req)) {
            if (req.has_response_status() && req.response_status().code() != 0) {
                return Status(static_cast<grpc::StatusCode>(req.response_status().code()),
                              req.response_status().message());
            }
            for (const auto &p : req.response_parameters()) {
                StreamingOutputCallResponse r;
                r.mutable_payload()->set_body(std::string(p.size(), '\0'));
                if (!s->Write(r, ResponseOptions(ctx, p))) {
                    return Status(grpc::StatusCode::ABORTED, "write failed");
                }
            }
        }
        return Status::OK;
    }
};

} // namespace

int main(int argc, char **argv)
{
    std::string port = Flag(argc, argv, "port", "10000");
    std::string addr = "127.0.0.1:" + port;
    std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
    if (Flag(argc, argv, "use_tls", "false") == "true") {
        grpc::SslServerCredentialsOptions opts;
        opts.pem_key_cert_pairs.push_back({ReadFile(Flag(argc, argv, "tls_key", "")),
                                           ReadFile(Flag(argc, argv, "tls_cert", ""))});
        creds = grpc::SslServerCredentials(opts);
    }
    TestServiceImpl service;
    grpc::ServerBuilder builder;
    builder.AddListeningPort(addr, creds);
    builder.RegisterService(&service);
    std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
    if (!server) {
        std::cerr << "ref_server: cannot listen on " << addr << std::endl;
        return 1;
    }
    std::cerr << "ref_server: listening on " << addr << std::endl;
    server->Wait();
    return 0;
}
