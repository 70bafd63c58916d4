#!/usr/bin/env python3
"""bench/peers/python_split.py: split gzipped JSON lines by event type, the
way a user writes it without a router (a peer of `router route` in
bench/router).

Usage: python_split.py [--field NAME] INPUT.jsonl.gz OUT_DIR

Reads INPUT line by line (gzip.open), parses each line with json.loads, takes
obj[NAME] (default event_type, the field gen-events writes and the router
reads by default) and writes the raw line, unchanged, to one
gzip.open(..., "wb", compresslevel=1) writer per type:
OUT_DIR/<type, percent-encoded>.jsonl.gz. A line without the field, or whose
value is not a string, goes to OUT_DIR/_untyped.jsonl.gz, so every input line
is written exactly once. Prints "python_split: N lines, T types" on stderr.
Standard library only.
"""

import gzip
import json
import os
import sys
import urllib.parse


def main(argv):
    field = "event_type"
    if len(argv) >= 2 and argv[0] == "--field":
        field, argv = argv[1], argv[2:]
    if len(argv) != 2:
        sys.exit(__doc__.split("\n\n")[1])
    src, out = argv
    os.makedirs(out, exist_ok=True)
    writers = {}
    lines = 0
    try:
        with gzip.open(src, "rb") as f:
            for line in f:
                value = json.loads(line).get(field)
                key = value if isinstance(value, str) else None
                w = writers.get(key)
                if w is None:
                    # Percent-encoding keeps distinct types in distinct files.
                    name = "_untyped" if key is None else urllib.parse.quote(key, safe="")
                    w = gzip.open(os.path.join(out, name + ".jsonl.gz"), "wb", compresslevel=1)
                    writers[key] = w
                if not line.endswith(b"\n"):
                    line += b"\n"
                w.write(line)
                lines += 1
    finally:
        for w in writers.values():
            w.close()
    print(f"python_split: {lines} lines, {len(writers)} types", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
