#!/usr/bin/env python3
"""bench/peers/python_cloudfront.py: turn gzipped CloudFront standard logs
into per-type gzipped JSON lines, the way a user writes it without a router
(a peer of `router route --format cloudfront` in bench/router).

Usage: python_cloudfront.py --type-field KEY --type-pattern REGEX INPUT.gz OUT_DIR

Reads INPUT line by line (gzip.open, text), takes the field names from each
#Fields: header, splits every other non-# line on tabs into one dict: keys
through the same normalisation as the router (cloudfront_fields.key), `-`
as None, the fields CloudFront percent-encodes decoded with
urllib.parse.unquote (cs_uri_query also kept as written, under
cs_uri_query_raw), and the router's `timestamp` last
(cloudfront_fields.timestamp of date and time). The type is REGEX's first group in obj[KEY]; the object
goes out with json.dumps (compact, UTF-8) to one
gzip.open(..., "wb", compresslevel=1) writer per type:
OUT_DIR/<type>.jsonl.gz. A line whose field count is not the header's, or
whose type does not match, goes to OUT_DIR/_untyped.jsonl.gz, so every
record is written exactly once. Standard library only.
"""

import gzip
import json
import os
import re
import sys
import urllib.parse

from cloudfront_fields import DECODED, KEEP_RAW, key, timestamp


def main(argv):
    opts = {}
    while len(argv) >= 2 and argv[0] in ("--type-field", "--type-pattern"):
        opts[argv[0]] = argv[1]
        argv = argv[2:]
    if len(argv) != 2 or len(opts) != 2:
        sys.exit(__doc__.split("\n\n")[1])
    type_key = opts["--type-field"].lstrip("/")
    pattern = re.compile(opts["--type-pattern"])
    src, out = argv
    os.makedirs(out, exist_ok=True)
    writers = {}
    columns = []
    stamp = True
    lines = 0
    unquote = urllib.parse.unquote
    try:
        with gzip.open(src, "rt", encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                if line.startswith("#"):
                    if line.startswith("#Fields:"):
                        columns = [
                            (key(n), n in DECODED, key(n) + "_raw" if n in KEEP_RAW else None)
                            for n in line[len("#Fields:"):].split()
                        ]
                        # The router adds a timestamp unless the header
                        # names one; without date and time it is null.
                        stamp = "timestamp" not in (c[0] for c in columns)
                    continue
                values = line.rstrip("\n").split("\t")
                obj = None
                if len(values) == len(columns):
                    obj = {}
                    for (k, decode, raw), v in zip(columns, values):
                        if v == "-":
                            obj[k] = None
                            if raw:
                                obj[raw] = None
                        elif decode:
                            obj[k] = unquote(v)
                            if raw:
                                obj[raw] = v
                        else:
                            obj[k] = v
                    if stamp:
                        obj["timestamp"] = timestamp(obj.get("date"), obj.get("time"))
                m = obj and pattern.match(obj.get(type_key) or "")
                name = m.group(1) if m else None
                w = writers.get(name)
                if w is None:
                    file = "_untyped" if name is None else urllib.parse.quote(name, safe="")
                    w = gzip.open(os.path.join(out, file + ".jsonl.gz"), "wb", compresslevel=1)
                    writers[name] = w
                if obj is None:
                    w.write(json.dumps({"_line": line.rstrip("\n")}).encode() + b"\n")
                else:
                    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
                    w.write(text.encode("utf-8", "surrogateescape") + b"\n")
                lines += 1
    finally:
        for w in writers.values():
            w.close()
    print(f"python_cloudfront: {lines} lines, {len(writers)} types", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
