/*
 * app — installable apps: folders of definitions <-> the meta database.
 *
 * An app folder (DESIGN.md §6) holds app.json, types/, workflows/, forms/, reports/, i18n/
 * (JSON, one definition per file, the file named after the definition) and hooks/ (Lua text).
 * Installing reads and checks every file first (strict JSON, known folders, names matching
 * files), then stores everything in one write transaction: an app installs whole or not at all.
 * Exporting writes the same files back in canonical form (2-space indent, stable key order), so
 * install then export reproduces canonical files byte for byte.
 */
#ifndef TRL_APP_H
#define TRL_APP_H

#include "schema/schema.h"

struct trl_app_file {
    char *kind; /* "app", "type", "workflow", "form", "report", "i18n", "hook" (owned) */
    char *name; /* definition name: file name without extension (owned) */
    char *path; /* path relative to the app folder, for messages (owned) */
    char *text; /* file contents (owned) */
    size_t n;   /* bytes of text */
};

struct trl_app_bundle {
    char *name;                 /* app name from app.json (owned) */
    char *version;              /* app version from app.json (owned) */
    struct trl_app_file *files; /* owned array */
    size_t nfiles;              /* entries */
};

/* Reads and checks an app folder. 0, or TRL_EINVAL / TRL_EJSON / TRL_EIO with d naming the file
 * (and line/column for JSON errors). The bundle is owned: trl_app_bundle_free. */
int trl_app_read_dir(const char *dir, struct trl_app_bundle *b, struct trl_diag *d);
void trl_app_bundle_free(struct trl_app_bundle *b);

/* Stores every definition of b in write txn t. Returns 0 or the first failure with d naming
 * the file (TRL_EVALIDATION, TRL_ECONFLICT, ...). *changed tells whether anything differed. */
int trl_app_install(struct trl_txn *t, const struct trl_app_bundle *b, bool *changed,
                    struct trl_diag *d);

/* Writes app `name` into folder dir (created; existing files of the same names overwritten).
 * 0, TRL_ENOTFOUND (no such app), TRL_EIO. */
int trl_app_export(struct trl_txn *t, const char *name, const char *dir, struct trl_diag *d);

/* Appends a JSON array of installed apps [{name, version, labels, types:[...]}] to out. */
int trl_app_list(struct trl_txn *t, struct trl_buf *out);

#endif
