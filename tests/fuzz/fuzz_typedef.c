/* Fuzz target: type definitions as an app folder or the meta API would deliver them.
 * Strictly checked JSON goes through the schema compiler; anything it accepts must compile again
 * from its own canonical form to the same canonical form (install -> export -> install). */
#include "codec/codec.h"
#include "schema/schema.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct trl_diag d;
    trl_diag_init(&d);
    if (trl_json_check((const char *)data, size, 64, &d) == 0) {
        trl_diag_reset(&d);
        int rc = trl_schema_check_type("t", (const char *)data, size, &d);
        if (rc == 0) {
            char *c1 = trl_schema_canonical_json((const char *)data, size, &d);
            if (!c1) abort();
            trl_diag_reset(&d);
            if (trl_schema_check_type("t", c1, strlen(c1), &d) != 0) abort();
            char *c2 = trl_schema_canonical_json(c1, strlen(c1), &d);
            if (!c2 || strcmp(c1, c2) != 0) abort();
            free(c1);
            free(c2);
        } else if (rc != TRL_EVALIDATION && rc != TRL_EJSON && rc != TRL_ENOMEM) {
            abort();
        }
    }
    trl_diag_reset(&d);
    return 0;
}
