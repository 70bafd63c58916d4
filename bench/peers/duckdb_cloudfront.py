#!/usr/bin/env python3
"""bench/peers/duckdb_cloudfront.py: turn gzipped CloudFront standard logs
into per-type gzipped JSON lines with DuckDB (from PyPI; bench/router
installs duckdb==2.0.1 into .venv), a peer of `router route --format
cloudfront` in bench/router.

Usage: duckdb_cloudfront.py --type-field KEY --type-pattern REGEX [--threads N] INPUT.gz OUT_DIR

The field names come from INPUT's first #Fields: header (read with gzip
here: DuckDB's CSV reader cannot take column names from a comment line;
gen-events writes one header per file). Then one statement, on one
in-memory connection with SET threads=N (default 2):

  COPY (SELECT <each field as its key; url_decode() of the fields
                CloudFront percent-encodes, cs_uri_query also as written>,
               date || 'T' || time || 'Z' AS timestamp (as the router
               writes it: NULL when either is; NULL without both columns),
               regexp_extract(KEY, REGEX, 1) AS type
        FROM read_csv(INPUT, tab-separated, the two header lines skipped,
                      '-' as NULL, every column VARCHAR, no quoting))
    TO OUT_DIR (FORMAT json, PARTITION_BY (type), COMPRESSION gzip)

Output: OUT_DIR/type=<type>/data_<n>.json.gz, one JSON object per record
(a record whose type does not match goes to type= with an empty name).
"""

import sys

import duckdb

from cloudfront_fields import DECODED, KEEP_RAW, fields_of, key


def main(argv):
    opts = {"--threads": "2"}
    while len(argv) >= 2 and argv[0] in ("--type-field", "--type-pattern", "--threads"):
        opts[argv[0]] = argv[1]
        argv = argv[2:]
    if len(argv) != 2 or "--type-field" not in opts or "--type-pattern" not in opts:
        sys.exit(__doc__.split("\n\n")[1])
    src, out = argv
    names = fields_of(src)
    lit = lambda s: "'" + s.replace("'", "''") + "'"  # noqa: E731
    ident = lambda s: '"' + s.replace('"', '""') + '"'  # noqa: E731
    select = []
    for n in names:
        k = ident(key(n))
        select.append(f"url_decode({k}) AS {k}" if n in DECODED else k)
        if n in KEEP_RAW:
            select.append(f"{k} AS {ident(key(n) + '_raw')}")
    if "timestamp" not in names:
        both = "date" in names and "time" in names
        select.append("\"date\" || 'T' || \"time\" || 'Z' AS \"timestamp\"" if both else 'NULL AS "timestamp"')
    columns = "{" + ", ".join(f"{lit(key(n))}: 'VARCHAR'" for n in names) + "}"
    type_key = ident(opts["--type-field"].lstrip("/"))
    con = duckdb.connect()
    con.execute(f"SET threads={int(opts['--threads'])}")
    con.execute(
        f"""
        COPY (
            SELECT {", ".join(select)},
                regexp_extract({type_key}, {lit(opts["--type-pattern"])}, 1) AS type
            FROM read_csv({lit(src)},
                columns = {columns}, header = false, skip = 2,
                auto_detect = false, delim = '\t', quote = '', escape = '',
                nullstr = '-', compression = 'gzip')
        ) TO {lit(out)} (
            FORMAT json, PARTITION_BY (type), COMPRESSION gzip,
            OVERWRITE_OR_IGNORE true)
        """
    )
    n = con.execute(f"SELECT count(*) FROM glob({lit(out + '/*/*')})").fetchone()[0]
    print(f"duckdb_cloudfront: duckdb {duckdb.__version__}, {opts['--threads']} threads, {n} files", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
