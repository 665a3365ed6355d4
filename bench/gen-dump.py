#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""gen-dump.py - `ddsnap dump` text of a big store, for `ddsnap restore` (bench/open.sh).

    gen-dump.py <exceptions> <snapshots> <data_start> <ms_shift> [<chunk_shift> [<stride>]]

Snapshots 1..S have gens 1..S and the current gen is S+1.  With <stride> k (default 1) the
origin has n*k chunks and exception i is at chunk i*k (spread over a big origin); below,
c is the exception's number.  Chunk c holds one exception,
born at gen d-1 and dead at d = c % S + 2, so every snapshot owns about n/S exceptions and
every exception is visible to exactly one snapshot.  Each exception's data chunk is its own,
from the third metaslab of the data region on (the first two stay free for the metadata the
restore writes); the data runs are claimed one metaslab at a time (a run may not cross one).
<data_start> and <ms_shift> are the label's, read from `ddsnap dump` of the store initialized
at the size the restore will use (the same size gives the same layout).  No data is written:
the store and origin files stay sparse.
"""
import struct
import sys


def main():
    n, nsnaps, data_start, ms_shift = (int(a) for a in sys.argv[1:5])
    chunk_shift = int(sys.argv[5]) if len(sys.argv) > 5 else 14
    stride = int(sys.argv[6]) if len(sys.argv) > 6 else 1
    cb = 1 << (chunk_shift - 12)  # blocks per chunk
    ms = 1 << ms_shift
    first = data_start + 2 * ms  # first data block used
    out = sys.stdout
    out.write("ddsnap-dump version=1\n")
    out.write("label device=snapstore version=1 chunk_shift=%d origin_bytes=%d\n"
              % (chunk_shift, (n * stride) << chunk_shift))
    out.write("scalar gen=%d\nscalar next_snap=0\ntree exceptions\n" % (nsnaps + 1))
    pack = struct.Struct("<QQ").pack
    base = first // cb
    step = 100000
    for lo in range(0, n, step):
        out.write("".join("entry key=%d:%d value=%s\n"
                          % (c * stride, c % nsnaps + 2, pack(c % nsnaps + 1, base + c).hex())
                          for c in range(lo, min(n, lo + step))))
    out.write("tree snapshots\n")
    rec = struct.Struct("<QQ32sQHBBI")
    for tag in range(1, nsnaps + 1):
        out.write("entry key=%d value=%s\n"
                  % (tag, rec.pack(tag, 1700000000 + tag, b"", 0, 0, 0, 0, 0).hex()))
    b, end = first, first + n * cb
    while b < end:
        m = min(end, data_start + ((b - data_start) // ms + 1) * ms)
        out.write("space class=data start=%d blocks=%d\n" % (b, m - b))
        b = m
    out.write("end\n")


if __name__ == "__main__":
    main()
