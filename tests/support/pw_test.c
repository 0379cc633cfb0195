/*
 * pw_test.c: helpers every cmocka test uses: running a loop to completion and
 * checking that no handle leaked, and running it until a condition holds.
 */
#include <stdio.h>
#include "pw_test.h"

static void walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    fprintf(stderr, "leaked handle: %s\n", uv_handle_type_name(uv_handle_get_type(h)));
}

void pw_test_loop_finish(uv_loop_t *loop, uint64_t max_ms)
{
    uint64_t start = uv_hrtime();
    while (uv_run(loop, UV_RUN_NOWAIT) != 0) {
        if ((uv_hrtime() - start) / 1000000 > max_ms) {
            uv_walk(loop, walk_close, NULL);
            fail_msg("loop still has active handles after %llu ms", (unsigned long long)max_ms);
        }
        uv_sleep(1);
    }
    int rv = uv_loop_close(loop);
    if (rv != 0) {
        uv_walk(loop, walk_close, NULL);
    }
    assert_int_equal(rv, 0);
}

void pw_test_run_until(uv_loop_t *loop, const int *flag, uint64_t max_ms)
{
    uint64_t start = uv_hrtime();
    while (!*flag && (uv_hrtime() - start) / 1000000 < max_ms) {
        uv_run(loop, UV_RUN_ONCE);
    }
    assert_true(*flag);
}

const char *pw_test_path(const char *rel)
{
    static char path[1024];
    snprintf(path, sizeof(path), "%s/%s", PW_TEST_DIR, rel);
    return path;
}
