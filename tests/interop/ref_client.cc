// Reference interop client on gRPC C++ (Debian's libgrpc++), used only by tests:
// run against paywire-interop-server. The cases about compression, as gRPC's
// interop test descriptions specify them, with each message's compressed flag
// read as gRPC's own interop client reads it. Flags: --server_host --server_port
// --test_case=all|NAME [--use_tls --ca_file=PEM --server_host_override=NAME].
// Prints one line per case; exits non-zero if any fails.
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ref_common.h"
#include "src/proto/grpc/testing/test.grpc.pb.h"

using grpc::ClientContext;
using grpc::Status;
using namespace grpc::testing;

// ClientContext names this class a friend, for gRPC's interop client: it reads the
// call's core handle to learn the received messages' flags.
namespace grpc
{
namespace testing
{
class InteropClientContextInspector
{
  public:
    explicit InteropClientContextInspector(const ClientContext &ctx) : ctx_(ctx)
    {
    }
    bool WasCompressed() const
    {
        return pw_ref::WasCompressed(ctx_.call_);
    }

  private:
    const ClientContext &ctx_;
};
} // namespace testing
} // namespace grpc

namespace
{

using Stub = TestService::Stub;

// Fails with why when cond does not hold.
#define EXPECT(cond, ...)                                 \
    do {                                                  \
        if (!(cond)) {                                    \
            std::snprintf(err, sizeof(err), __VA_ARGS__); \
            return false;                                 \
        }                                                 \
    } while (0)

char err[512];

bool Zeros(const Payload &p, size_t n)
{
    return p.body().size() == n && p.body().find_first_not_of('\0') == std::string::npos;
}

bool ClientCompressedUnary(Stub *stub)
{
    for (bool compress : {false, true}) {
        ClientContext ctx;
        if (compress) {
            ctx.set_compression_algorithm(GRPC_COMPRESS_GZIP);
        }
        SimpleRequest req;
        req.mutable_expect_compressed()->set_value(compress);
        req.set_response_size(314159);
        req.mutable_payload()->set_body(std::string(271828, '\0'));
        SimpleResponse resp;
        Status s = stub->UnaryCall(&ctx, req, &resp);
        EXPECT(s.ok() && Zeros(resp.payload(), 314159), "compress=%d: status %d %s", compress,
               s.error_code(), s.error_message().c_str());
    }
    // The probe: an uncompressed request that expects compression is refused.
    ClientContext probe;
    SimpleRequest req;
    req.mutable_expect_compressed()->set_value(true);
    req.set_response_size(314159);
    req.mutable_payload()->set_body(std::string(271828, '\0'));
    SimpleResponse resp;
    Status s = stub->UnaryCall(&probe, req, &resp);
    EXPECT(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT,
           "probe: want INVALID_ARGUMENT, got %d %s", s.error_code(), s.error_message().c_str());
    return true;
}

bool ClientCompressedStreaming(Stub *stub)
{
    {
        // The probe: an uncompressed message that expects compression is refused.
        ClientContext probe;
        StreamingInputCallResponse resp;
        StreamingInputCallRequest req;
        req.mutable_expect_compressed()->set_value(true);
        req.mutable_payload()->set_body(std::string(27182, '\0'));
        auto stream = stub->StreamingInputCall(&probe, &resp);
        stream->Write(req); // may fail once the server refused: Finish tells
        Status s = stream->Finish();
        EXPECT(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT,
               "probe: want INVALID_ARGUMENT, got %d %s", s.error_code(),
               s.error_message().c_str());
    }
    ClientContext ctx;
    ctx.set_compression_algorithm(GRPC_COMPRESS_GZIP);
    StreamingInputCallResponse resp;
    auto stream = stub->StreamingInputCall(&ctx, &resp);
    StreamingInputCallRequest req;
    req.mutable_expect_compressed()->set_value(true);
    req.mutable_payload()->set_body(std::string(27182, '\0'));
    EXPECT(stream->Write(req), "first write failed");
    req.mutable_expect_compressed()->set_value(false);
    req.mutable_payload()->set_body(std::string(45904, '\0'));
    EXPECT(stream->Write(req, grpc::WriteOptions().set_no_compression()), "second write failed");
    stream->WritesDone();
    Status s = stream->Finish();
    EXPECT(s.ok() && resp.aggregated_payload_size() == 73086, "status %d %s, aggregated %d",
           s.error_code(), s.error_message().c_str(), resp.aggregated_payload_size());
    return true;
}

bool ServerCompressedUnary(Stub *stub)
{
    for (bool compress : {true, false}) {
        ClientContext ctx;
        grpc::testing::InteropClientContextInspector inspector(ctx);
        SimpleRequest req;
        req.mutable_response_compressed()->set_value(compress);
        req.set_response_size(314159);
        SimpleResponse resp;
        Status s = stub->UnaryCall(&ctx, req, &resp);
        EXPECT(s.ok() && Zeros(resp.payload(), 314159), "status %d %s", s.error_code(),
               s.error_message().c_str());
        EXPECT(inspector.WasCompressed() == compress, "response_compressed=%d: flag %d", compress,
               inspector.WasCompressed());
    }
    return true;
}

bool ServerCompressedStreaming(Stub *stub)
{
    const int sizes[] = {31415, 92653};
    const bool compressed[] = {true, false};
    ClientContext ctx;
    grpc::testing::InteropClientContextInspector inspector(ctx);
    StreamingOutputCallRequest req;
    for (int i = 0; i < 2; i++) {
        ResponseParameters *p = req.add_response_parameters();
        p->set_size(sizes[i]);
        p->mutable_compressed()->set_value(compressed[i]);
    }
    auto stream = stub->StreamingOutputCall(&ctx, req);
    StreamingOutputCallResponse resp;
    size_t k = 0;
    while (stream->Read(&resp)) {
        EXPECT(k < 2 && Zeros(resp.payload(), sizes[k]), "response %zu: wrong size %zu", k,
               resp.payload().body().size());
        EXPECT(inspector.WasCompressed() == compressed[k],
               "response %zu: compressed flag %d, want %d", k, inspector.WasCompressed(),
               compressed[k]);
        k++;
    }
    Status s = stream->Finish();
    EXPECT(s.ok() && k == 2, "status %d %s, %zu responses", s.error_code(),
           s.error_message().c_str(), k);
    return true;
}

} // namespace

int main(int argc, char **argv)
{
    std::string host = pw_ref::Flag(argc, argv, "server_host", "127.0.0.1");
    std::string port = pw_ref::Flag(argc, argv, "server_port", "10000");
    std::string which = pw_ref::Flag(argc, argv, "test_case", "all");
    std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
    grpc::ChannelArguments args;
    if (pw_ref::Flag(argc, argv, "use_tls", "false") == "true") {
        grpc::SslCredentialsOptions opts;
        opts.pem_root_certs = pw_ref::ReadFile(pw_ref::Flag(argc, argv, "ca_file", ""));
        creds = grpc::SslCredentials(opts);
        std::string override = pw_ref::Flag(argc, argv, "server_host_override", "");
        if (!override.empty()) {
            args.SetSslTargetNameOverride(override);
        }
    }
    auto channel = grpc::CreateCustomChannel(host + ":" + port, creds, args);
    auto stub = TestService::NewStub(channel);
    const std::vector<std::pair<std::string, std::function<bool(Stub *)>>> cases = {
        {"client_compressed_unary", ClientCompressedUnary},
        {"client_compressed_streaming", ClientCompressedStreaming},
        {"server_compressed_unary", ServerCompressedUnary},
        {"server_compressed_streaming", ServerCompressedStreaming},
    };
    int ran = 0, failed = 0;
    for (const auto &c : cases) {
        if (which != "all" && which != c.first) {
            continue;
        }
        ran++;
        err[0] = '\0';
        bool ok = c.second(stub.get());
        failed += !ok;
        std::printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", c.first.c_str(), ok ? "" : ": ",
                    ok ? "" : err);
        std::fflush(stdout);
    }
    if (ran == 0) {
        std::fprintf(stderr, "grpcpp-interop-client: unknown test case %s\n", which.c_str());
        return 2;
    }
    std::printf("%d passed, %d failed\n", ran - failed, failed);
    return failed ? 1 : 0;
}
