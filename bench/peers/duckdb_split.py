#!/usr/bin/env python3
"""bench/peers/duckdb_split.py: split gzipped JSON lines by event type with
DuckDB (from PyPI; bench/router installs duckdb==2.0.1 into .venv), a peer
of `router route` in bench/router.

Usage: duckdb_split.py [--field NAME] [--threads N] INPUT.jsonl.gz OUT_DIR

One statement, on one in-memory connection with SET threads=N (default 2):

  COPY (SELECT line, json_extract_string(line, '$.NAME') AS type
        FROM read_csv(INPUT, one VARCHAR column `line`, ...))
    TO OUT_DIR (FORMAT csv, PARTITION_BY (type), COMPRESSION gzip, ...)

Input: each line is read whole as one VARCHAR column, not parsed into
columns: read_csv with header=false, no auto-detection, quote and escape
off and the delimiter \\x01, a byte that never occurs raw in JSON text (a
control character inside a JSON string must be escaped as \\u0001).
json_extract_string then parses each line once, for its type (NAME defaults
to event_type, the field gen-events writes and the router reads).

Output: OUT_DIR/type=<type>/data_<n>.csv.gz, one folder per type (a line
without the field goes to type=NULL), holding the column `line` alone (the
partition column is not written), with no header, the same \\x01 delimiter
and quote and escape off: so each output line is the input line byte for
byte, neither quoted nor escaped (bench/router counts them: as many lines out
as in). Gzip at DuckDB's own level, not 1: its files come out smaller than
gzip -1's.
"""

import sys

import duckdb


def main(argv):
    field, threads = "event_type", 2
    while len(argv) >= 2 and argv[0] in ("--field", "--threads"):
        if argv[0] == "--field":
            field = argv[1]
        else:
            threads = int(argv[1])
        argv = argv[2:]
    if len(argv) != 2:
        sys.exit(__doc__.split("\n\n")[1])
    src, out = argv
    con = duckdb.connect()
    con.execute(f"SET threads={threads}")
    # The path and field go in as string literals (COPY ... TO takes no
    # prepared parameters); quote them the SQL way.
    lit = lambda s: "'" + s.replace("'", "''") + "'"  # noqa: E731
    path = "$." + field
    con.execute(
        f"""
        COPY (
            SELECT line, json_extract_string(line, {lit(path)}) AS type
            FROM read_csv({lit(src)},
                columns = {{'line': 'VARCHAR'}}, header = false,
                auto_detect = false, delim = '\x01', quote = '', escape = '',
                compression = 'gzip')
        ) TO {lit(out)} (
            FORMAT csv, PARTITION_BY (type), COMPRESSION gzip,
            HEADER false, DELIMITER '\x01', QUOTE '', ESCAPE '',
            OVERWRITE_OR_IGNORE true)
        """
    )
    n = con.execute(f"SELECT count(*) FROM glob({lit(out + '/*/*')})").fetchone()[0]
    print(f"duckdb_split: duckdb {duckdb.__version__}, {threads} threads, {n} files", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
