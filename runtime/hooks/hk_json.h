/*
 * hk_json.h — JSON for hook code: the `trellis.json` table (encode, decode, null) and the
 * functions the host uses to hand JSON to Lua and to read tables hooks return. See the "JSON"
 * section of README.md for the rules.
 *
 * Every function runs inside a hook call on the call's lua_State (a state made by
 * trl_hooks_vm_new): it charges its work to the call's instruction budget, keeps within the
 * memory the call has left, and raises a Lua error (luaL_error, messages starting with
 * "json.encode: " or "json.decode: ") or the limit's stop when it cannot finish. Only
 * runtime/hooks/ includes this header.
 */
#ifndef TRL_HK_JSON_H
#define TRL_HK_JSON_H

#include "hooks/hooks_int.h"

#define HK_JSON_MAX_DEPTH 128         /* arrays and objects nested in one another */
#define HK_JSON_MAX_TEXT  (16u << 20) /* bytes of text json.decode accepts */

/* Pushes a new plain table {encode = , decode = , null = } (the caller wraps it in a read-only
 * proxy). The functions and the null sentinel are shared by every table pushed on this state. */
void hk_json_push_lib(lua_State *L);

/* Decodes the n bytes at json (need not be NUL-terminated) and pushes the value, as
 * json.decode does. Returns 1 (values pushed). Raises on text that is not valid JSON (with the
 * byte offset), on invalid UTF-8, on nesting deeper than HK_JSON_MAX_DEPTH, on text longer than
 * HK_JSON_MAX_TEXT; stops the call on its instruction or memory limit. */
int hk_json_push_text(lua_State *L, const char *json, size_t n);

/* Encodes the value at idx as json.encode does and appends the text to out. Returns 0. Raises
 * on values JSON cannot hold (with their path, "$.items[3]"); stops the call on its instruction
 * or memory limit. out is appended to only on success, but out belongs to the caller: keep it
 * where it is freed whatever the call returns (the ud of trl_hooks_call), not in a local of a
 * callback that may raise. */
int hk_json_encode_value(lua_State *L, int idx, struct trl_buf *out);

/* Pushes the null sentinel (trellis.json.null): one per state, the same value in every call. */
void hk_json_push_null(lua_State *L);

#endif
