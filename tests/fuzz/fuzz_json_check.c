/*
 * fuzz_json_check.c — libFuzzer target for trl_json_check.
 *
 * Proves on arbitrary bytes: no crash, no read past the input (libFuzzer hands over a heap block
 * of exactly `size` bytes, so ASan catches over-reads), only TRL_EJSON or TRL_ENOMEM on failure,
 * every TRL_EJSON message starts with "line L, column C: ", and everything accepted is accepted
 * by cJSON too (the checker is stricter than cJSON, never looser). The nesting limit stays below
 * cJSON's CJSON_NESTING_LIMIT (1000) and above the checker's 64 inline frames.
 *
 * Build (clang): clang -g -O1 -fsanitize=fuzzer,address,undefined -Iruntime
 *   tests/fuzz/fuzz_json_check.c runtime/codec/json_check.c runtime/core/core.c runtime/core/time.c
 *   $(pkg-config --cflags --libs libcjson)
 * Seed corpus: ../shared/testdata/JSONTestSuite/test_parsing.
 */
#include "codec/codec.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_DEPTH 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct trl_diag d;
    trl_diag_init(&d);
    int rc = trl_json_check((const char *)data, size, FUZZ_MAX_DEPTH, &d);
    if (rc == TRL_EJSON) {
        if (d.code != TRL_EJSON || strncmp(d.message, "line ", 5) != 0 ||
            strstr(d.message, ", column ") == NULL) {
            fprintf(stderr, "bad diagnostics: code %d, message \"%s\"\n", d.code, d.message);
            abort();
        }
    } else if (rc == 0) {
        cJSON *json = cJSON_ParseWithLength((const char *)data, size);
        if (!json) {
            fprintf(stderr, "trl_json_check accepted what cJSON refuses\n");
            abort();
        }
        cJSON_Delete(json);
    } else if (rc != TRL_ENOMEM) {
        fprintf(stderr, "unexpected return code %d\n", rc);
        abort();
    }
    trl_diag_reset(&d);
    return 0;
}
