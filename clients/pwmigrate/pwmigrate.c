/*
 * pwmigrate: applies a service's migrations (the same runner its --migrate
 * uses).
 *   pwmigrate --db URL --dir services/merchant/migrations [--lock NAME]
 * Exit 0 when the schema is up to date, 1 on failure (the reason on stderr),
 * 2 on bad usage.
 */
#include <stdio.h>
#include <string.h>
#include <paywire/db.h>

static const char *flag(int argc, char **argv, const char *name)
{
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], name) == 0) {
            return argv[i + 1];
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const char *db = flag(argc, argv, "--db");
    const char *dir = flag(argc, argv, "--dir");
    const char *lock = flag(argc, argv, "--lock");
    if (db == NULL || dir == NULL) {
        fprintf(stderr, "usage: pwmigrate --db URL --dir MIGRATIONS_DIR [--lock NAME]\n");
        return 2;
    }
    char default_lock[512];
    if (lock == NULL) {
        snprintf(default_lock, sizeof(default_lock), "paywire.migrate:%s", dir);
        lock = default_lock;
    }
    int applied = 0;
    char err[1024];
    pw_status rv = pw_db_migrate(db, dir, lock, &applied, err, sizeof(err));
    if (rv != PW_OK) {
        fprintf(stderr, "pwmigrate: %s (%s)\n", err, pw_status_str(rv));
        return 1;
    }
    printf("pwmigrate: %d migration%s applied; schema up to date\n", applied,
           applied == 1 ? "" : "s");
    return 0;
}
