/* greeter-server: serves greeter.v1.Greeter on ADDRESS (h2c) until SIGINT or SIGTERM. */
#include <signal.h>
#include <stdio.h>
#include "greeter/v1/greeter.pw.h"

static void say_hello(pw_call *call, const Greeter__V1__HelloRequest *req, void *user_data)
{
    (void)user_data;
    char text[256];
    snprintf(text, sizeof(text), "Hello, %s", req->name);
    Greeter__V1__HelloReply reply = GREETER__V1__HELLO_REPLY__INIT;
    reply.message = text;
    greeter_v1_greeter_say_hello_reply(call, &reply);
}

static void say_hellos(pw_call *call, const Greeter__V1__HelloRequest *req, void *user_data)
{
    (void)user_data;
    for (int i = 1; i <= req->count; i++) {
        char text[256];
        snprintf(text, sizeof(text), "Hello #%d, %s", i, req->name);
        Greeter__V1__HelloReply reply = GREETER__V1__HELLO_REPLY__INIT;
        reply.message = text;
        if (greeter_v1_greeter_say_hellos_send(call, &reply) != PW_OK) {
            break;
        }
    }
    pw_call_finish(call, PW_OK, NULL);
}

static const greeter_v1_greeter_handlers handlers = {.say_hello = say_hello,
                                                     .say_hellos = say_hellos};

static uv_signal_t sigint, sigterm;

static void on_signal(uv_signal_t *sig, int signum)
{
    (void)signum;
    pw_server_close(sig->data, NULL, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
    uv_close((uv_handle_t *)&sigterm, NULL);
}

int main(int argc, char **argv)
{
    const char *address = argc > 1 ? argv[1] : "127.0.0.1:50051";
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_server *server;
    int port;
    pw_status st = pw_server_new(&server, &loop, NULL);
    if (st == PW_OK) {
        st = greeter_v1_greeter_register(server, &handlers, NULL);
    }
    if (st == PW_OK) {
        st = pw_server_listen(server, address, NULL, &port);
    }
    if (st != PW_OK) {
        fprintf(stderr, "greeter-server: %s: %s\n", address, pw_status_str(st));
        return 1;
    }
    uv_signal_init(&loop, &sigint);
    uv_signal_init(&loop, &sigterm);
    sigint.data = sigterm.data = server;
    uv_signal_start_oneshot(&sigint, on_signal, SIGINT);
    uv_signal_start_oneshot(&sigterm, on_signal, SIGTERM);
    printf("greeter-server: listening on port %d\n", port);
    fflush(stdout);
    uv_run(&loop, UV_RUN_DEFAULT);
    return uv_loop_close(&loop) == 0 ? 0 : 1;
}
