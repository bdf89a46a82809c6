#!/usr/bin/env python3
"""How late a sleeping thread wakes up on this machine: the floor under any server's tail
latency here. Sleeps 1 ms at a time for SECONDS (default 10) and prints percentiles of the
overshoot. Run it alone, then beside a load test, to see what the machine adds:

    scripts/wakeup-latency.py 10
"""
import sys
import time

seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
late = []
end = time.monotonic() + seconds
while time.monotonic() < end:
    t0 = time.monotonic()
    time.sleep(0.001)
    late.append((time.monotonic() - t0 - 0.001) * 1000)
late.sort()
pick = lambda q: late[min(len(late) - 1, int(q * len(late)))]
print(f"wake-ups {len(late)}  late by: p50 {pick(0.5):.3f} ms  p99 {pick(0.99):.3f} ms  "
      f"p99.9 {pick(0.999):.3f} ms  max {late[-1]:.3f} ms")
