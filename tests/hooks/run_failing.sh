#!/bin/sh
# `trellis hooks test` on an app whose spec fails on purpose: exit 1, the failure named with its
# file and line, the other tests passed, the summary counted. Usage: run_failing.sh TRELLIS DIR
out=$("$1" hooks test "$2" 2>&1); rc=$?
echo "$out"
[ "$rc" -eq 1 ] || { echo "expected exit 1, got $rc"; exit 1; }
echo "$out" | grep -q 'specfix/tests/thing_spec.lua:8: expected 2, got 1' || { echo "no failure line"; exit 1; }
echo "$out" | grep -q '5 tests in 1 file: 3 passed, 1 failed, 1 pending' || { echo "bad summary"; exit 1; }
exit 0
