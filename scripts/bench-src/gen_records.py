#!/usr/bin/env python3
"""Writes N marketing_request records as JSON lines (for `trellis import`), deterministic.
usage: gen_records.py N [SEED] > records.jsonl"""
import json, random, sys

n = int(sys.argv[1])
rnd = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
regions = ["north", "south", "east", "west"]
words = ["新品推广", "门店陈列", "线上直播", "经销商培训", "joint promotion", "trade show",
         "webinar", "渠道激励", "co-branded ads", "路演"]
out = sys.stdout
for i in range(n):
    desc = " ".join(rnd.choice(words) for _ in range(24))
    out.write(json.dumps({
        "title": f"Promo {i} {rnd.choice(words)}",
        "partner": f"Partner {rnd.randint(1, 2000)}",
        "region": regions[rnd.randrange(4)],
        "budget": f"{rnd.randint(0, 99999)}.{rnd.randint(0, 99):02d}",
        "start_date": f"2026-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}",
        "description": desc,
    }, ensure_ascii=False))
    out.write("\n")
