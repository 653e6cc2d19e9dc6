/* hooks_fixture.c — see hooks_fixture.h. */
#include "hooks_fixture.h"

#include <check.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

struct trl_hooks_vm *vm;
const struct trl_clock *hooks_vm_clock;

void hooks_vm_setup(void)
{
    struct trl_diag d;
    trl_diag_init(&d);
    int rc = trl_hooks_vm_new(hooks_vm_clock, &vm, &d);
    ck_assert_msg(rc == 0, "trl_hooks_vm_new: %d %s", rc, d.message);
    trl_diag_reset(&d);
}

void hooks_vm_teardown(void)
{
    trl_hooks_vm_free(vm);
    vm = NULL;
}

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *version_of(const char *text)
{
    static char buf[32];
    uint64_t h = trl_fnv1a(TRL_FNV1A_INIT, text, strlen(text));
    snprintf(buf, sizeof(buf), "%016llx", (unsigned long long)h);
    return buf;
}
