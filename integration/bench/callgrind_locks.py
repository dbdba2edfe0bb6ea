#!/usr/bin/env python3
"""Instructions and atomic (lock-prefixed) instructions per measured request.

Runs the in-process engine benchmark under callgrind, counting only inside
`measured_request`, with per-instruction counts; disassembles the binary to
find its `lock`-prefixed instructions (atomic read-modify-writes: reference
counts of `Arc`, lock words) and adds up how often each ran. Callgrind
counts every instruction alike, but on these machines an atomic operation
costs several nanoseconds (an `Arc` clone and drop pair ~11 ns in a loop),
so the two numbers together say more about wall time than either alone.
Nothing here is timed; both counts are deterministic.

Usage (valgrind and objdump required):

    CARGO_TARGET_DIR=target cargo bench -p palisade-waf --bench crs_engine --no-run
    integration/bench/callgrind_locks.py target/release/deps/crs_engine-<hash> \\
        [--requests 300] [--top 15] [-- extra bench arguments]
"""

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile


def lock_addresses(binary):
    out = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", binary],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    pattern = re.compile(r"^\s+([0-9a-f]+):\s+lock ")
    return {int(m.group(1), 16) for m in map(pattern.match, out.splitlines()) if m}


def count(profile, locks):
    """(total instructions, lock instructions, lock instructions by function)."""
    total = 0
    by_fn = collections.Counter()
    fn = "?"
    after_call = False
    with open(profile) as f:
        for line in f:
            if line.startswith("fn="):
                fn = line[3:].strip()
            elif line.startswith("calls="):
                # The next cost line is the call's inclusive cost.
                after_call = True
            elif line.startswith("0x"):
                if after_call:
                    after_call = False
                    continue
                addr, _line, ir = line.split()[:3]
                ir = int(ir)
                total += ir
                if int(addr, 16) in locks:
                    by_fn[fn] += ir
    return total, by_fn


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("binary")
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("bench_args", nargs="*")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        profile = os.path.join(tmp, "callgrind.out")
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--dump-instr=yes",
                "--compress-pos=no",
                "--compress-strings=no",
                f"--callgrind-out-file={profile}",
                "--collect-atstart=no",
                "--toggle-collect=*measured_request*",
                args.binary,
                str(args.requests),
                *args.bench_args,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        total, by_fn = count(profile, lock_addresses(args.binary))
    n = args.requests
    print(f"instructions per request: {total / n:,.0f}")
    print(f"lock instructions per request: {sum(by_fn.values()) / n:,.0f}")
    for name, c in by_fn.most_common(args.top):
        print(f"{c / n:8.1f}  {name[:140]}")


if __name__ == "__main__":
    sys.exit(main())
