/* kinds_service.c: pwtest.v1.Kinds for tests (see kinds_service.h). */
#include <errno.h>
#include "kinds_service.h"

static void append(pw_call *call, const Pwtest__V1__Ledger__Entry *req, void *ud)
{
    (void)ud;
    Pwtest__V1__Ledger ledger = PWTEST__V1__LEDGER__INIT;
    Pwtest__V1__Ledger__Entry *entries[1] = {(Pwtest__V1__Ledger__Entry *)req};
    ledger.state = PWTEST__V1__LEDGER__STATE__STATE_OPEN;
    ledger.n_entries = 1;
    ledger.entries = entries;
    pwtest_v1_kinds_append_reply(call, &ledger);
}

static void replay(pw_call *call, const Pwtest__V1__Count *req, void *ud)
{
    (void)ud;
    for (int64_t i = 0; i < req->n; i++) {
        Pwtest__Common__V1__Money money = PWTEST__COMMON__V1__MONEY__INIT;
        money.currency = (char *)"USD";
        money.minor_units = 100 * (i + 1);
        Pwtest__V1__Ledger__Entry e = PWTEST__V1__LEDGER__ENTRY__INIT;
        e.amount = &money;
        pwtest_v1_kinds_replay_send(call, &e);
    }
    pw_call_finish(call, PW_OK, NULL);
}

typedef struct tally_state {
    int64_t n;
    int64_t sum;
} tally_state;

static void tally_on_message(pw_call *call, const Pwtest__V1__Ledger__Entry *e, void *ud)
{
    (void)call;
    tally_state *t = ud;
    t->n++;
    t->sum += e->amount ? e->amount->minor_units : 0;
}

static void tally_on_half_close(pw_call *call, void *ud)
{
    tally_state *t = ud;
    Pwtest__V1__Count c = PWTEST__V1__COUNT__INIT;
    c.n = t->n * 1000000 + t->sum; /* both checked by the client */
    pwtest_v1_kinds_tally_reply(call, &c);
}

static void tally_on_cancel(pw_call *call, pw_status why, void *ud)
{
    (void)ud;
    pw_call_finish(call, why, NULL);
}

static const pwtest_v1_kinds_tally_ops tally_ops = {
    .on_message = tally_on_message,
    .on_half_close = tally_on_half_close,
    .on_cancel = tally_on_cancel,
};

static void tally(pw_call *call, void *ud)
{
    (void)ud;
    tally_state *t = pw_call_alloc(call, sizeof(*t));
    pw_status rv = t != NULL ? pwtest_v1_kinds_tally_recv(call, &tally_ops, t) : PW_ERRNO(ENOMEM);
    if (rv != PW_OK) {
        pw_call_finish(call, rv, "cannot receive");
    }
}

int pw_test_kinds_mirror_cancels;

static void mirror_on_message(pw_call *call, const Pwtest__V1__Ledger__Entry *e, void *ud)
{
    (void)ud;
    pwtest_v1_kinds_mirror_send(call, e);
}

static void mirror_on_half_close(pw_call *call, void *ud)
{
    (void)ud;
    pw_call_finish(call, PW_OK, NULL);
}

static void mirror_on_cancel(pw_call *call, pw_status why, void *ud)
{
    (void)ud;
    pw_test_kinds_mirror_cancels++;
    pw_call_finish(call, why, NULL);
}

static const pwtest_v1_kinds_mirror_ops mirror_ops = {
    .on_message = mirror_on_message,
    .on_half_close = mirror_on_half_close,
    .on_cancel = mirror_on_cancel,
};

static void mirror(pw_call *call, void *ud)
{
    pw_status rv = pwtest_v1_kinds_mirror_recv(call, &mirror_ops, ud);
    if (rv != PW_OK) {
        pw_call_finish(call, rv, "cannot receive");
    }
}

static void empty_reply(pw_call *call, const Google__Protobuf__Empty *req, void *ud)
{
    (void)req;
    (void)ud;
    Google__Protobuf__Empty e = GOOGLE__PROTOBUF__EMPTY__INIT;
    pwtest_v1_kinds_new_reply(call, &e);
}

const pwtest_v1_kinds_handlers pw_test_kinds_handlers = {
    .append = append,
    .replay = replay,
    .tally = tally,
    .mirror = mirror,
    .new_ = empty_reply,
    .delete_ = empty_reply,
};
