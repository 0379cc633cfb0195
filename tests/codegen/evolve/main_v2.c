/*
 * Greeter after adding `rpc Goodbye` to greeter.proto: the only new code is the
 * handler and the call, both on generated names.
 */
#include <stdio.h>
#include <string.h>
#include "greeter/v1/greeter.pw.h"

static void hello(pw_call *call, const Greeter__V1__HelloRequest *req, void *ud)
{
    (void)ud;
    char text[128];
    snprintf(text, sizeof(text), "Hello, %s", req->name);
    Greeter__V1__HelloReply reply = GREETER__V1__HELLO_REPLY__INIT;
    reply.message = text;
    greeter_v1_greeter_hello_reply(call, &reply);
}

/* New: the Goodbye handler. */
static void goodbye(pw_call *call, const Greeter__V1__HelloRequest *req, void *ud)
{
    (void)ud;
    char text[128];
    snprintf(text, sizeof(text), "Goodbye, %s", req->name);
    Greeter__V1__HelloReply reply = GREETER__V1__HELLO_REPLY__INIT;
    reply.message = text;
    greeter_v1_greeter_goodbye_reply(call, &reply);
}

static const greeter_v1_greeter_handlers handlers = {.hello = hello, .goodbye = goodbye};

int main(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_server *server;
    pw_server_new(&server, &loop, NULL);
    greeter_v1_greeter_register(server, &handlers, NULL);
    int port;
    if (pw_server_listen(server, "127.0.0.1:0", NULL, &port) != PW_OK) {
        return 1;
    }
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    pw_channel *ch;
    pw_channel_new(&ch, &loop, target, NULL);

    Greeter__V1__HelloRequest req = GREETER__V1__HELLO_REQUEST__INIT;
    req.name = (char *)"paywire";
    Greeter__V1__HelloReply *reply = NULL;
    /* New: the call, through the generated client. */
    pw_status st = greeter_v1_greeter_goodbye_blocking(ch, &req, NULL, &reply, NULL);
    printf("%s\n", st == PW_OK ? reply->message : pw_status_str(st));
    int ok = st == PW_OK && strcmp(reply->message, "Goodbye, paywire") == 0;
    if (reply != NULL) {
        pw_protobuf_free(&reply->base);
    }
    pw_channel_close(ch, NULL, NULL);
    pw_server_close(server, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    return ok && uv_loop_close(&loop) == 0 ? 0 : 1;
}
