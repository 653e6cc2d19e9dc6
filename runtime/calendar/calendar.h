/*
 * calendar — time zones and business calendars, for SLA timers and report durations.
 *
 * Two objects. A time zone (struct trl_tz) is read from a TZif file (RFC 8536, versions 1 to 4)
 * of a zoneinfo directory; it answers the UTC offset at an instant, the stretch of time over which
 * that offset holds, and turns a local wall-clock time back into UTC. Instants after the file's
 * last transition follow the POSIX TZ rule of its footer ("CET-1CEST,M3.5.0,M10.5.0/3"), so 2090
 * is as exact as 2026. "UTC" is built in and needs no file.
 *
 * A business calendar (struct trl_cal) is a JSON definition (runtime/calendar/README.md): a time
 * zone, the working spans of each weekday in local wall-clock time ("09:00"-"12:00",
 * "13:30"-"18:00"), holidays (whole local dates or ranges) and make-up working days. It counts
 * working time: trl_cal_add finds when a duration of working time has passed, trl_cal_between
 * measures the working time between two instants. An instant is working time when its local
 * wall-clock time falls within a span of its local date, so a span that crosses a DST change
 * counts the time that really elapses (01:00-04:00 on a spring-forward day is two hours, on a
 * fall-back day four).
 *
 * Lifetimes: both objects are owned by the caller and immutable once made, so one may be shared
 * by any number of threads. A calendar owns its zone. Nothing here reads the clock, the
 * environment (TZ, TZDIR) or any global state; the only file access is trl_tz_load (and
 * trl_cal_parse, through it).
 *
 * Units: instants are UTC milliseconds since the epoch (as everywhere in Trellis) in the calendar
 * API and UTC seconds in the zone API; durations are milliseconds. Integer arithmetic only:
 * results are exact to the millisecond. Calendar arithmetic covers 1900-01-01T00:00Z up to
 * 10000-01-01T00:00Z (TRL_CAL_MIN_MS .. TRL_CAL_MAX_MS): earlier instants count from
 * TRL_CAL_MIN_MS, and an answer beyond the end is TRL_CAL_NEVER.
 */
#ifndef TRL_CALENDAR_H
#define TRL_CALENDAR_H

#include "core/core.h"

/* ---------------------------------------------------------------------------------------------
 * Time zones
 */
struct trl_tz;

/* Loads zone `name` ("Asia/Shanghai") from zoneinfo_dir (NULL: /usr/share/zoneinfo). A name is
 * letters, digits, '_', '-', '+' and '/' separating non-empty parts, at most 64 bytes, not
 * starting with '/'. "UTC" is built in (no file is read). Returns owned *out (trl_tz_free).
 * Errors: TRL_EVALIDATION (bad name, no such zone, not a TZif file, zone with leap seconds),
 * TRL_ECORRUPT (a TZif file that breaks RFC 8536 or has a footer that is not a POSIX TZ rule),
 * TRL_EIO, TRL_ENOMEM; d says which and names the file. */
int trl_tz_load(const char *zoneinfo_dir, const char *name, struct trl_tz **out,
                struct trl_diag *d);
void trl_tz_free(struct trl_tz *tz);
/* The name given to trl_tz_load (valid while tz lives). */
const char *trl_tz_name(const struct trl_tz *tz);

/* Offset of local time from UTC at instant utc_s, in seconds east of UTC (+28800 in Shanghai). */
int32_t trl_tz_offset(const struct trl_tz *tz, int64_t utc_s);
/* The same, plus the stretch [*from, *until) of UTC seconds around utc_s over which that offset
 * holds (INT64_MIN / INT64_MAX when unbounded). Either pointer may be NULL. */
int32_t trl_tz_offset_span(const struct trl_tz *tz, int64_t utc_s, int64_t *from, int64_t *until);
/* Local wall-clock time (seconds since 1970-01-01T00:00 local) to UTC seconds. A time that occurs
 * twice (fall-back overlap) gives the earlier instant; a time that does not exist (spring-forward
 * gap) is read with the offset in force before the gap, so 02:30 on the day New York springs
 * forward is 07:30 UTC, which is 03:30 local. */
int64_t trl_tz_to_utc(const struct trl_tz *tz, int64_t local_s);

/* ---------------------------------------------------------------------------------------------
 * Business calendars
 */
struct trl_cal;

#define TRL_CAL_MIN_MS (-2208988800000LL) /* 1900-01-01T00:00:00Z */
#define TRL_CAL_MAX_MS 253402300800000LL  /* 10000-01-01T00:00:00Z */
#define TRL_CAL_NEVER  INT64_MAX          /* trl_cal_add: the time is never reached */

/* Parses and checks a calendar definition json[0..n) (format: runtime/calendar/README.md) and
 * loads its zone from zoneinfo_dir (NULL: /usr/share/zoneinfo). Returns owned *out
 * (trl_cal_free). Errors: TRL_EJSON (not JSON or not UTF-8), TRL_ETOOBIG (over 1 MiB),
 * TRL_EVALIDATION with one field error per problem (code "schema", field = its path in the
 * definition: "week.mon[1]", "holidays[3].to", "timezone"; all problems at once), TRL_ENOMEM. */
int trl_cal_parse(const char *json, size_t n, const char *zoneinfo_dir, struct trl_cal **out,
                  struct trl_diag *d);
/* The calendar of policies that count plain elapsed time: every instant is working time, zone UTC,
 * name "24x7". Returns owned *out (trl_cal_free); 0 or TRL_ENOMEM. */
int trl_cal_24x7(struct trl_cal **out);
void trl_cal_free(struct trl_cal *c);

/* Name of the definition (valid while c lives). */
const char *trl_cal_name(const struct trl_cal *c);
/* Label in lang ("en" or "zh-CN"), falling back to the other language, then to the name. */
const char *trl_cal_label(const struct trl_cal *c, const char *lang);
/* The calendar's zone (borrowed; valid while c lives). */
const struct trl_tz *trl_cal_tz(const struct trl_cal *c);

/* The earliest instant t >= start_ms such that trl_cal_between(c, start_ms, t) == business_ms:
 * counting begins at start_ms or, outside working time, at the next working span, and the result
 * of a positive duration lies within working time or at the end of a span (a duration that ends
 * at 12:00 answers 12:00, not the 13:30 after lunch). business_ms <= 0 returns start_ms.
 * TRL_CAL_NEVER when the answer lies beyond TRL_CAL_MAX_MS. */
int64_t trl_cal_add(const struct trl_cal *c, int64_t start_ms, int64_t business_ms);
/* Working milliseconds in [a_ms, b_ms); 0 when b_ms <= a_ms. */
int64_t trl_cal_between(const struct trl_cal *c, int64_t a_ms, int64_t b_ms);
/* The first instant >= at_ms that is working time (at_ms itself inside a span), for the moment an
 * SLA clock starts; TRL_CAL_NEVER when there is none before TRL_CAL_MAX_MS. */
int64_t trl_cal_next_working(const struct trl_cal *c, int64_t at_ms);

/* ---------------------------------------------------------------------------------------------
 * Cron expressions: when scheduled jobs run. Five fields, minute hour day-of-month month
 * day-of-week, as in Vixie cron ("30 2 * * MON-FRI"), or a macro (@daily); the format and the
 * DST rules are in runtime/calendar/README.md. A parsed expression is immutable and may be
 * shared by any number of threads.
 */
struct trl_cron;

/* Parses expr (at most 200 bytes). Returns owned *out (trl_cron_free); *out is NULL on failure.
 * Errors: TRL_EVALIDATION (d names the field and the offending text, in English and Chinese:
 * "cron field 2 (hour): 24 is out of range 0-23"), TRL_ENOMEM. */
int trl_cron_parse(const char *expr, struct trl_cron **out, struct trl_diag *d);
void trl_cron_free(struct trl_cron *c);
/* The first instant strictly after after_ms (a whole UTC minute) at which c matches the local
 * wall-clock time of tz (borrowed; NULL: UTC). A matching local time skipped by a
 * spring-forward gap fires once, at the first instant after the gap; a local time that occurs
 * twice (fall-back) fires at its first occurrence only. TRL_CAL_NEVER when nothing matches before
 * TRL_CAL_MAX_MS (or never: "0 0 30 2 *"). Instants before TRL_CAL_MIN_MS count from there. */
int64_t trl_cron_next(const struct trl_cron *c, const struct trl_tz *tz, int64_t after_ms);

#endif
