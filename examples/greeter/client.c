/* greeter-client: calls SayHello and SayHellos on ADDRESS as NAME and prints the answers. */
#include <stdio.h>
#include "greeter/v1/greeter.pw.h"

static pw_status say_hellos(pw_channel *ch, Greeter__V1__HelloRequest *req)
{
    pw_stream *s;
    pw_status st = greeter_v1_greeter_say_hellos_start_blocking(ch, req, NULL, &s);
    if (st != PW_OK) {
        return st;
    }
    Greeter__V1__HelloReply *reply;
    while (greeter_v1_greeter_say_hellos_stream_recv(s, &reply) == PW_OK && reply != NULL) {
        printf("%s\n", reply->message);
        pw_protobuf_free(&reply->base);
    }
    st = pw_stream_finish(s, NULL, NULL);
    pw_stream_free(s);
    return st;
}

int main(int argc, char **argv)
{
    const char *address = argc > 1 ? argv[1] : "127.0.0.1:50051";
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_channel *ch;
    pw_status st = pw_channel_new(&ch, &loop, address, NULL);
    if (st == PW_OK) {
        Greeter__V1__HelloRequest req = GREETER__V1__HELLO_REQUEST__INIT;
        req.name = argc > 2 ? argv[2] : "world";
        req.count = 3;
        Greeter__V1__HelloReply *reply = NULL;
        st = greeter_v1_greeter_say_hello_blocking(ch, &req, NULL, &reply, NULL);
        if (st == PW_OK) {
            printf("%s\n", reply->message);
            pw_protobuf_free(&reply->base);
            st = say_hellos(ch, &req);
        }
        pw_channel_close(ch, NULL, NULL);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    if (st != PW_OK) {
        fprintf(stderr, "greeter-client: %s: %s\n", address, pw_status_str(st));
        return 1;
    }
    return 0;
}
