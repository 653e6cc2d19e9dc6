/*
 * sla — timers in LMDB and the clocks of service-level targets (DESIGN.md §3, §4).
 *
 * Timers are rows keyed by due time: nothing is loaded into memory, so a store with a million
 * pending timers starts as fast as an empty one, and the scheduler only ever reads the first key.
 * A timer is fired in the writer: trl_timer_fire deletes each due row and hands its payload to
 * the caller in the same txn, so a timer whose effects committed is gone, and one whose job
 * failed or never committed (crash, kill -9) is still there to fire after a restart: nothing is
 * lost and nothing fires twice. Every timer has an owner (e.g. "sla/marketing_request/42/review")
 * so a stopped or paused clock cancels its timers by owner.
 *
 * An SLA clock measures business time (a calendar, runtime/calendar) toward a target for one
 * record: it runs, pauses (elapsed time is banked and the timers cancelled), resumes (the due time
 * moves by exactly the paused business time: due = add(resume, target - elapsed)) and stops (met,
 * or breached once the target passed). Warning and breach timers fire at warn% and 100%.
 *
 * Storage (TRL_DB_TIMER, big-endian):
 *   due u64, id u64                   -> payload (JSON text)      (due < 2^63: first byte < 0x80)
 *   0xFE 'c' type NUL record u64 target -> clock JSON
 *   0xFF owner NUL id u64             -> due u64                  (cancellation by owner)
 */
#ifndef TRL_SLA_H
#define TRL_SLA_H

#include "calendar/calendar.h"
#include "store/store.h"

/* ---------------------------------------------------------------------------------------------
 * Timers
 */
/* Adds a timer due at due_ms owned by owner (<= 200 bytes) with payload. *id (may be NULL). */
int trl_timer_add(struct trl_txn *t, int64_t due_ms, const char *owner, const char *payload,
                  uint64_t *id);
/* Cancels every timer of owner; *n (may be NULL) receives how many. */
int trl_timer_cancel(struct trl_txn *t, const char *owner, size_t *n);
/* The earliest due time: 0 with *due, or TRL_ENOTFOUND when no timer is pending. */
int trl_timer_next(struct trl_txn *t, int64_t *due);
/* Called for each fired timer, after its rows are deleted in t. Return 0 to go on; TRL_EMAPFULL
 * and other errors end the firing (the job fails and the timers stay). */
typedef int (*trl_timer_fn)(void *ud, struct trl_txn *t, int64_t due, const char *owner,
                            const char *payload, size_t n);
/* Fires at most max timers due at or before now, earliest first; *fired receives how many. */
int trl_timer_fire(struct trl_txn *t, int64_t now, size_t max, trl_timer_fn fn, void *ud,
                   size_t *fired);
/* Number of pending timers (a scan: for tests and `trellis check`). */
int trl_timer_count(struct trl_txn *t, uint64_t *n);

/* ---------------------------------------------------------------------------------------------
 * Clocks
 */
enum trl_sla_status { TRL_SLA_RUNNING, TRL_SLA_PAUSED, TRL_SLA_MET, TRL_SLA_BREACHED };

struct trl_sla_clock {
    char type[64];       /* record type */
    uint64_t record;     /* record id */
    char target[64];     /* target name (unique per record) */
    char policy[64];     /* policy that started it */
    char calendar[64];   /* calendar name ("24x7" for elapsed time) */
    int64_t target_ms;   /* business ms allowed */
    int64_t warn_ms;     /* business ms at which to warn (0: no warning) */
    int64_t started_at;  /* UTC ms the clock started */
    int64_t since;       /* UTC ms it last started or resumed running */
    int64_t elapsed_ms;  /* business ms banked before `since` */
    int64_t due_at;      /* UTC ms of the breach (while running; the last known one otherwise) */
    int64_t warn_at;     /* UTC ms of the warning (0: none pending) */
    int64_t stopped_at;  /* UTC ms it stopped (met or breached and stopped), 0 while open */
    int64_t breached_at; /* UTC ms it breached, 0 if not */
    int64_t warned_at;   /* UTC ms it warned, 0 if not */
    enum trl_sla_status status;
    bool stopped; /* no longer measuring (met, or breached and then stopped) */
};

/* The clock of (type, record, target): 0, TRL_ENOTFOUND. */
int trl_sla_get(struct trl_txn *t, const char *type, uint64_t record, const char *target,
                struct trl_sla_clock *c);
/* Starts (or restarts) clock c at now with cal: fills since/due/warn and schedules the timers,
 * whose payloads carry phase "warning" or "breach". */
int trl_sla_start(struct trl_txn *t, struct trl_sla_clock *c, const struct trl_cal *cal,
                  int64_t now);
/* Pauses a running clock (banks elapsed business time, cancels its timers). */
int trl_sla_pause(struct trl_txn *t, struct trl_sla_clock *c, const struct trl_cal *cal,
                  int64_t now);
/* Resumes a paused clock: the due time moves by exactly the paused business time. */
int trl_sla_resume(struct trl_txn *t, struct trl_sla_clock *c, const struct trl_cal *cal,
                   int64_t now);
/* Stops an open clock: met when the target was not passed, else breached. */
int trl_sla_stop(struct trl_txn *t, struct trl_sla_clock *c, const struct trl_cal *cal,
                 int64_t now);
/* A fired timer's phase ("warning" or "breach") reached: marks it on the clock. *apply is false
 * when the clock no longer expects that phase (stopped, paused, already marked). */
int trl_sla_mark(struct trl_txn *t, struct trl_sla_clock *c, const char *phase, int64_t now,
                 bool *apply);
/* Business ms elapsed at now. */
int64_t trl_sla_elapsed(const struct trl_sla_clock *c, const struct trl_cal *cal, int64_t now);
/* Appends the clock as JSON with its state at now (elapsed, remaining, percent). */
int trl_sla_json(const struct trl_sla_clock *c, const struct trl_cal *cal, int64_t now,
                 struct trl_buf *out);
/* Calls fn for every clock of a record. */
int trl_sla_each(struct trl_txn *t, const char *type, uint64_t record,
                 int (*fn)(void *ud, const struct trl_sla_clock *c), void *ud);
/* The owner string of a clock's timers. */
void trl_sla_owner(const struct trl_sla_clock *c, char *out, size_t n);

#endif
