// Shared by the gRPC C++ reference peers (ref_server.cc, ref_client.cc), tests only:
// gRPC-style flags, reading a file, and the compressed flag of the last message a
// call received, as gRPC's own interop programs read it.
#ifndef PAYWIRE_REF_COMMON_H
#define PAYWIRE_REF_COMMON_H

#include <grpc/grpc.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

// Exported by libgrpc for gRPC's interop tests (src/core/lib/surface/call_test_only.h,
// not installed): the flags of the last message the call received.
uint32_t grpc_call_test_only_get_message_flags(grpc_call *call);

namespace pw_ref
{

inline std::string Flag(int argc, char **argv, const std::string &name, const std::string &def)
{
    std::string prefix = "--" + name;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (a == prefix) {
            return "true";
        }
        if (a.rfind(prefix + "=", 0) == 0) {
            return a.substr(prefix.size() + 1);
        }
    }
    return def;
}

inline std::string ReadFile(const std::string &path)
{
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// 1 when the last message call received had its compressed flag set. gRPC core
// marks such a message GRPC_WRITE_INTERNAL_COMPRESS (0x80000000) on arrival and
// GRPC_WRITE_INTERNAL_TEST_ONLY_WAS_COMPRESSED (0x40000000) once inflated.
inline bool WasCompressed(grpc_call *call)
{
    return (grpc_call_test_only_get_message_flags(call) & 0xC0000000u) != 0;
}

} // namespace pw_ref

#endif
