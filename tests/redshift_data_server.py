#!/usr/bin/env python3
"""A Redshift Data API server for tests, running the statements on PostgreSQL.

moto's redshift-data cannot serve the Rust SDK (ISO timestamps where the SDK
expects epoch numbers; statements never finish; no SQL runs), so the
project provides this one. It speaks the Data API wire protocol (AWS JSON
1.1, `X-Amz-Target: RedshiftData.<Operation>`) for ExecuteStatement,
BatchExecuteStatement, DescribeStatement, GetStatementResult and
CancelStatement, and runs each statement for real on PostgreSQL, on a
thread of its own, so statuses move SUBMITTED -> STARTED -> FINISHED /
FAILED / ABORTED as they do on Redshift. A batch runs in one transaction,
on one connection: its session.

The Redshift dialect it understands beyond PostgreSQL's, as far as the
loader uses it:
- `SUPER` is `jsonb`; `GETDATE()` is `now()::timestamp`; `SYSDATE` is the
  transaction's start in UTC [SYSDATE: "the start date and time for the
  current transaction"];
  `pg_last_copy_id()` is the query id of the session's (batch's) last COPY
  that began loading (its sub-statement's RedshiftQueryId; -1 before any),
  `pg_last_copy_count()` the rows it loaded, rejected lines excluded (0
  before any) [PG_LAST_COPY_ID, PG_LAST_COPY_COUNT]; `pg_backend_pid()` is
  PostgreSQL's, and is the `session_id` of the session's load errors.
- `COPY t (cols) FROM 's3://b/k' IAM_ROLE '…' FORMAT AS JSON 's3://b/paths'
  | 'noshred' GZIP|ZSTD TIMEFORMAT 'auto' [MAXERROR [AS] n]
  [TRUNCATECOLUMNS]`: the object is read from S3 (moto, through boto3 and
  AWS_ENDPOINT_URL), decompressed, one JSON document a line (blank lines
  skipped; assumed), mapped through the jsonpaths file (`$['a']['b']`,
  `$.a.b`, `[0]`) and loaded with one PostgreSQL COPY. A line that cannot
  become a row is a load error: with at most `MAXERROR` of them (default 0;
  at most 100000, larger values are capped: assumed) the COPY loads the
  other lines and succeeds; one more and it fails with "Load into table 't'
  failed. Check 'sys_load_error_detail' system table for details."
  [copy-parameters-data-load: "MAXERROR default 0, limit 100000"; that
  page also says the load fails at `error_count` errors "or greater", but
  tools and users describe n tolerated, n+1 failing, which this server
  does]. Each load error is a row of `public.sys_load_error_detail` and of
  `public.stl_load_errors`, written on a connection of their own and
  committed at once, so they are visible to the next statements of the
  batch (READ COMMITTED) and stay when the batch fails or rolls back, as
  Redshift's logs are not transactional. Checks run in Python first (one
  PostgreSQL COPY for a clean file); what PostgreSQL still refuses (dates,
  timestamps) is found by redoing the file from the refused line on, in a
  savepoint, so each line is written at most twice.
- The load error views, as tables, with Redshift's columns
  [SYS_LOAD_ERROR_DETAIL, STL_LOAD_ERRORS]: sys_load_error_detail (user_id,
  query_id, transaction_id, session_id, database_name, table_id,
  start_time, file_name, line_number, column_name, column_type,
  column_length, position, error_code, error_message: no raw line, as on
  Redshift) and stl_load_errors (userid, slice, tbl, starttime, session,
  query, filename, line_number, colname, type, col_length, position,
  raw_line, raw_field_value, err_code, err_reason; raw values cut to 1024
  characters, non-ASCII as '.'). Strings are cut to the views' widths
  (file_name 256, error_message 512…). Both tables are filled whatever the
  target; real Serverless has only the SYS view, and real Redshift's SYS
  query_id may differ from the STL query id / pg_last_copy_id(): here they
  are one number. `transaction_id` is the batch's `txid_current()`.

What a value becomes, per column type (Redshift's error code and message):
- Missing path or JSON null: NULL; into NOT NULL: 1213 "Missing data for
  not-null field" [Load error reference].
- Not JSON: 1224 "Invalid JSON: …"; nested past the parser's 1000 levels:
  1224 [SUPER limitations: nesting 1000]; over 4 MB: 1224 "The total size of
  the json object exceeds the max limit of 4194304 bytes" [COPY into SUPER:
  4 MB a JSON object]; bytes not UTF-8 or a lone surrogate: 1220 "String
  contains invalid or unsupported UTF8 codepoints…" [Multibyte character
  load errors]; a document, or a member on a path, that is not an object
  where the path names a member: 1224 "Invalid JSONPath format: Member is not
  an object." (column_name empty for the document itself). Messages of
  1224 and the 4 MB rule as a line error: assumed.
- SMALLINT/INTEGER/BIGINT: JSON integers, and strings of digits ("7"
  loads as 7: the COPY-from-JSON page advises quoting numbers to keep
  precision); anything else (7.5, true, "abc", objects) 1207 "Invalid
  digit, Value 'a', Pos 0, Type: Long" [SYS_LOAD_ERROR_DETAIL sample];
  outside the type's range 1222 "Overflow (Long valid range … to …)" (code:
  the reference's "integer value overflow"; message as Redshift users
  report it).
- DOUBLE PRECISION/REAL: numbers and numeric strings; else 1208; infinite
  1208 "Overflow …" (assumed).
- BOOLEAN: true/false, 0/1, "t" "true" "y" "yes" "1" / "f" "false" "n"
  "no" "0" (Redshift's boolean literals); else 1210 (message assumed).
- VARCHAR(n): strings; numbers, booleans as their JSON text, objects and
  arrays as their JSON text [COPY from JSON: "loaded as a string"];
  booleans as true/false: assumed. Longer than n BYTES [Preparing input
  data: VARCHAR lengths are in bytes]: 1204 "String length exceeds DDL
  length", or cut to n bytes with TRUNCATECOLUMNS. A NUL (\u0000): 1218
  (code and message assumed: PostgreSQL and Redshift cannot store it).
- CHAR(n): as VARCHAR, and a non-ASCII character is 1220 "Multibyte
  character not supported for CHAR (Hint: Try using VARCHAR). Invalid char:
  …" [Multibyte character load errors].
- SUPER: the JSON value (a string is a JSON string); \u0000: 1218.
- TIMESTAMP/DATE and others: the text, parsed by PostgreSQL; refused: 1206
  "Invalid timestamp format or value [auto]" / 1205 (messages assumed; 'auto'
  and PostgreSQL accept nearly the same ISO forms).

Sources (Amazon Redshift Database Developer Guide): copy-parameters-data-load,
PG_LAST_COPY_ID, PG_LAST_COPY_COUNT, SYS_LOAD_ERROR_DETAIL, r_STL_LOAD_ERRORS,
r_Load_Error_Reference, copy-usage_notes-copy-from-json, copy_json,
limitations-super, multi-byte-character-load-errors, t_preparing-input-data.

Test hooks (POST /_test/rules, JSON): {"fail_matching": "text"} fails
statements whose SQL contains the text, {"abort_matching": "text"} aborts
them, {"delay_ms": N} makes every statement (or, with "delay_matching":
"text", those whose SQL contains the text) take at least N ms.

Usage: redshift_data_server.py --port N --database-url postgres://…
"""

import argparse
import datetime
import gzip
import itertools
import json
import math
import re
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import psycopg

STATEMENTS = {}
TOKENS = {}
RULES = {"fail_matching": None, "abort_matching": None, "delay_ms": 0, "delay_matching": None}
LOCK = threading.Lock()
QUERY_IDS = itertools.count(1000)
ARGS = None


class ApiError(Exception):
    def __init__(self, kind, message, status=400):
        super().__init__(message)
        self.kind, self.message, self.status = kind, message, status


class Aborted(Exception):
    pass


def now():
    return time.time()


def translate(sql, session=None):
    """Redshift spellings PostgreSQL lacks; with the statement's session,
    `pg_last_copy_id()` / `pg_last_copy_count()` become its last COPY's
    query id (-1 before any) and loaded rows (0 before any)."""
    sql = re.sub(r"\bGETDATE\(\)", "now()::timestamp", sql, flags=re.I)
    sql = re.sub(r"\bSYSDATE\b(?!\s*\()", "(transaction_timestamp() AT TIME ZONE 'UTC')", sql, flags=re.I)
    sql = re.sub(r"\bSUPER\b", "jsonb", sql)
    if session is not None:
        sql = re.sub(r"\bpg_last_copy_id\s*\(\s*\)", f"CAST({session.last_copy_id} AS INTEGER)", sql, flags=re.I)
        sql = re.sub(r"\bpg_last_copy_count\s*\(\s*\)", f"CAST({session.last_copy_count} AS BIGINT)", sql, flags=re.I)
    return sql


COPY_RE = re.compile(
    r"^\s*COPY\s+(?P<table>\S+?)\s*\((?P<cols>[^)]*)\)\s+FROM\s+'(?P<src>s3://[^']+)'(?P<opts>.*)$",
    re.I | re.S,
)

# Redshift's limits (see the module docstring for the sources).
MAXERROR_LIMIT = 100000
JSON_OBJECT_MAX_BYTES = 4 * 1024 * 1024

# The views' columns: (name, PostgreSQL type, width Redshift gives it or None).
SYS_COLUMNS = [
    ("user_id", "INTEGER", None), ("query_id", "BIGINT", None), ("transaction_id", "BIGINT", None),
    ("session_id", "INTEGER", None), ("database_name", "TEXT", 64), ("table_id", "INTEGER", None),
    ("start_time", "TIMESTAMP", None), ("file_name", "TEXT", 256), ("line_number", "BIGINT", None),
    ("column_name", "TEXT", 127), ("column_type", "TEXT", 10), ("column_length", "TEXT", 10),
    ("position", "INTEGER", None), ("error_code", "INTEGER", None), ("error_message", "TEXT", 512),
]
STL_COLUMNS = [
    ("userid", "INTEGER", None), ("slice", "INTEGER", None), ("tbl", "INTEGER", None),
    ("starttime", "TIMESTAMP", None), ("session", "INTEGER", None), ("query", "INTEGER", None),
    ("filename", "TEXT", 256), ("line_number", "BIGINT", None), ("colname", "TEXT", 127),
    ("type", "TEXT", 10), ("col_length", "TEXT", 10), ("position", "INTEGER", None),
    ("raw_line", "TEXT", 1024), ("raw_field_value", "TEXT", 1024), ("err_code", "INTEGER", None),
    ("err_reason", "TEXT", 100),
]


def s3_get(uri):
    bucket, key = uri[len("s3://"):].split("/", 1)
    client = boto3.client("s3")
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()


class LineError(Exception):
    """A line COPY cannot load: one row of the load error views."""

    def __init__(self, code, message, column=None, raw_field=""):
        super().__init__(message)
        self.code, self.message, self.raw_field = code, message, raw_field
        self.column = column  # a Column, or None (the line as a whole)
        self.line_number = 0
        self.raw_line = b""


class MemberNotObject(Exception):
    pass


def parse_jsonpath(path):
    """$['a']['b'], $.a.b, [0] (array index); $ alone: the document."""
    parts = []
    for quoted, plain, index in re.findall(r"\['((?:[^'\\]|\\.)*)'\]|\.([A-Za-z0-9_]+)|\[(\d+)\]", path[1:]):
        if index:
            parts.append(int(index))
        else:
            name = quoted if quoted else plain
            parts.append(re.sub(r"\\(.)", r"\1", name) if quoted else name)
    return parts


def walk(doc, parts):
    at = doc
    for p in parts:
        if at is None:
            return None
        if isinstance(p, int):
            if type(at) is not list:
                raise MemberNotObject()
            at = at[p] if p < len(at) else None
        else:
            if type(at) is not dict:
                raise MemberNotObject()
            at = at.get(p)
    return at


ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def scalar_text(v):
    """A JSON value as the text COPY converts from (objects and arrays whole)."""
    if isinstance(v, str):
        return v
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def masked(text, width):
    """As the views show raw data: multibyte characters as periods."""
    return "".join(c if 0 < ord(c) < 128 else "." for c in text[:width])


def reject_constant(name):
    raise ValueError(f"{name} is not JSON")


INT_RE = re.compile(r"\s*[+-]?[0-9]+\s*\Z")
FLOAT_RE = re.compile(r"\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*\Z")
BOOLS = {"t": "t", "true": "t", "y": "t", "yes": "t", "1": "t", "f": "f", "false": "f", "n": "f", "no": "f", "0": "f"}
INT_RANGES = {"int2": ("Short", -2**15, 2**15 - 1), "int4": ("Integer", -2**31, 2**31 - 1), "int8": ("Long", -2**63, 2**63 - 1)}
SHOWN_TYPES = {"bpchar": "char", "jsonb": "super", "json": "super"}


class Column:
    """A target column and how a JSON value becomes its COPY text (or a
    LineError, as Redshift would reject it)."""

    def __init__(self, name, typname, length, notnull, truncate):
        self.name, self.typname, self.length, self.notnull = name, typname, length, notnull
        self.truncate = truncate
        self.shown_type = SHOWN_TYPES.get(typname, typname)
        self.convert = {
            "int2": self.to_int, "int4": self.to_int, "int8": self.to_int,
            "float4": self.to_float, "float8": self.to_float, "bool": self.to_bool,
            "varchar": self.to_varchar, "text": self.to_varchar, "bpchar": self.to_char,
            "jsonb": self.to_super, "json": self.to_super,
        }.get(typname, self.to_text)

    def error(self, code, message, value):
        return LineError(code, message, self, scalar_text(value) if value is not None else "")

    def invalid_digit(self, text, kind, code):
        allowed = "+- \t.eE" if kind == "Double" else "+- \t"
        pos = next((i for i, c in enumerate(text) if not (c.isascii() and (c.isdigit() or c in allowed))), 0)
        return LineError(code, f"Invalid digit, Value '{text[pos:pos + 1]}', Pos {pos}, Type: {kind}", self, text)

    def to_int(self, v):
        kind, lo, hi = INT_RANGES[self.typname]
        if type(v) is int:
            n = v
        elif type(v) is str and INT_RE.match(v):
            n = int(v)
        else:
            raise self.invalid_digit(scalar_text(v), kind, 1207)
        if not lo <= n <= hi:
            raise self.error(1222, f"Overflow ({kind} valid range {lo} to {hi})", v)
        return str(n)

    def to_float(self, v):
        if type(v) is int:
            try:
                f = float(v)
            except OverflowError:
                f = math.inf
        elif type(v) is float:
            f = v
        elif type(v) is str and FLOAT_RE.match(v):
            f = float(v)
        else:
            raise self.invalid_digit(scalar_text(v), "Double", 1208)
        if math.isinf(f) or (self.typname == "float4" and abs(f) > 3.4028234663852886e38):
            raise self.error(1208, "Overflow (Double valid range 2.225074e-308 to 1.797693e+308)", v)
        return repr(f)

    def to_bool(self, v):
        if v is True or v is False:
            return "t" if v else "f"
        text = scalar_text(v)
        b = BOOLS.get(text.strip().lower()) if type(v) in (str, int) else None
        if b is None:
            raise LineError(1210, f"Invalid boolean value, Value '{text[:20]}', Type: Boolean", self, text)
        return b

    def checked_string(self, s, v):
        if "\x00" in s:
            raise self.error(1218, "Invalid null byte - field contains a NUL character (\\u0000)", v)
        n = self.length
        if n is not None and len(s) * 4 > n:
            b = s.encode("utf-8", "surrogatepass")
            if len(b) > n:
                if not self.truncate:
                    raise self.error(1204, "String length exceeds DDL length", v)
                s = b[:n].decode("utf-8", "ignore")
        return s.translate(ESCAPES)

    def to_varchar(self, v):
        return self.checked_string(v if type(v) is str else scalar_text(v), v)

    def to_char(self, v):
        s = v if type(v) is str else scalar_text(v)
        if not s.isascii():
            bad = next(c for c in s if not c.isascii())
            raise self.error(1220, "Multibyte character not supported for CHAR (Hint: Try using VARCHAR). "
                             f"Invalid char: {bad.encode('utf-8', 'surrogatepass').hex(' ')}", v)
        return self.checked_string(s, v)

    def to_super(self, v):
        s = json.dumps(v, separators=(",", ":"), ensure_ascii=False)
        if "\\u0000" in s:
            raise self.error(1218, "Invalid null byte - field contains a NUL character (\\u0000)", v)
        return s.translate(ESCAPES)

    def to_text(self, v):
        # Dates, timestamps and the rest: PostgreSQL parses the text; what it
        # refuses is found by the slow path (run_copy).
        s = v if type(v) is str else scalar_text(v)
        if "\x00" in s:
            raise self.error(1218, "Invalid null byte - field contains a NUL character (\\u0000)", v)
        return s.translate(ESCAPES)


def target_columns(cur, table, names, truncate):
    cur.execute(
        """SELECT a.attname, t.typname, a.atttypmod, a.attnotnull, a.attrelid::integer
           FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
           WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped""",
        (table,),
    )
    found = {r[0]: r for r in cur.fetchall()}
    cols, table_id = [], 0
    for n in names:
        key = n[1:-1].replace('""', '"') if n.startswith('"') else n.lower()
        if key not in found:
            raise psycopg.errors.UndefinedColumn(f'column "{key}" of relation "{table}" does not exist')
        name, typname, typmod, notnull, table_id = found[key]
        length = typmod - 4 if typname in ("varchar", "bpchar") and typmod >= 4 else None
        cols.append(Column(name, typname, length, notnull, truncate))
    return cols, table_id


def line_row(line, cols, paths, noshred):
    """The COPY text of one JSON line, or LineError."""
    if len(line) > JSON_OBJECT_MAX_BYTES:
        raise LineError(1224, f"The total size of the json object exceeds the max limit of {JSON_OBJECT_MAX_BYTES} bytes")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as e:
        raise LineError(1220, "String contains invalid or unsupported UTF8 codepoints. "
                        f"Bad UTF8 hex sequence: {e.object[e.start:e.end].hex(' ')}")
    try:
        doc = json.loads(text, parse_constant=reject_constant)
    except RecursionError:
        raise LineError(1224, "Invalid JSON: nested deeper than the JSON parser's limit of 1000 levels")
    except ValueError as e:
        raise LineError(1224, f"Invalid JSON: {e}")
    if not noshred and type(doc) is not dict:
        raise LineError(1224, "Invalid JSONPath format: Member is not an object.")
    out = []
    for col, parts in zip(cols, paths):
        try:
            v = walk(doc, parts)
        except MemberNotObject:
            raise LineError(1224, "Invalid JSONPath format: Member is not an object.", col)
        if v is None:
            if col.notnull:
                raise LineError(1213, "Missing data for not-null field", col)
            out.append("\\N")
            continue
        try:
            out.append(col.convert(v))
        except RecursionError:
            raise LineError(1224, "Invalid JSON: nested deeper than the JSON parser's limit of 1000 levels", col)
    return "\t".join(out) + "\n"


def pg_line_error(e, cols):
    """A row PostgreSQL refused, as the load error Redshift would give."""
    ctx = (e.diag.context or "") if e.diag else ""
    m = re.search(r"line (\d+)(?:, column (\w+))?", ctx)
    name = (m.group(2) if m else None) or (e.diag.column_name if e.diag else None)
    col = next((c for c in cols if c.name == name), None)
    state, t = e.sqlstate or "", col.typname if col else ""
    msg = (e.diag.message_primary if e.diag else None) or str(e)
    if state == "23502":
        code, msg = 1213, "Missing data for not-null field"
    elif state in ("22007", "22008"):
        code, msg = (1205, "Invalid Date Format - length must be 10 or more") if t == "date" else (1206, "Invalid timestamp format or value [auto]")
    elif state == "22003":
        code, msg = (1208, "Overflow (Double valid range)") if t.startswith("float") else (1222, f"Overflow ({msg})")
    elif state == "22001":
        code, msg = 1204, "String length exceeds DDL length"
    elif state in ("22P05", "22021"):
        code = 1218
    elif state == "22P02":
        code = {"int2": 1207, "int4": 1207, "int8": 1207, "float4": 1208, "float8": 1208, "numeric": 1209,
                "bool": 1210, "jsonb": 1224, "json": 1224}.get(t, 1223)
    else:
        code = 1200
    err = LineError(code, msg, col)
    return (int(m.group(1)) if m else None), err


def data_error(e):
    """A row's data (not the statement, a cancel or the connection) failed."""
    s = e.sqlstate or ""
    return s.startswith("22") or s == "23502"


def copy_rows(cur, table, cols, rows):
    names = ", ".join('"' + c.name.replace('"', '""') + '"' for c in cols)
    with cur.copy(f"COPY {table} ({names}) FROM STDIN") as cp:
        cp.write("".join(r for _, r in rows).encode("utf-8"))


def record_load_errors(session, errors, src, table_id, query_id, started):
    """Rows of sys_load_error_detail (and stl_load_errors) for a COPY, on a
    connection of their own: committed whatever the batch does later, as
    Redshift's logs are not transactional."""
    if not errors:
        return
    user, db, pid, xid = 100, session.database, session.pid or 0, session.xid or 0
    sys_rows, stl_rows = [], []
    for e in errors:
        c = e.column
        cname, ctype, clen = (c.name, c.shown_type, str(c.length) if c.length is not None else "") if c else ("", "", "")
        raw_line = e.raw_line.decode("utf-8", "replace").rstrip("\r\n")
        sys_rows.append(fit(SYS_COLUMNS, [user, query_id, xid, pid, db, table_id, started, src, e.line_number,
                                          cname, ctype, clen, 0, e.code, e.message]))
        stl_rows.append(fit(STL_COLUMNS, [user, 0, table_id, started, pid, query_id, src, e.line_number, cname,
                                          ctype, clen, 0, masked(raw_line, 1024), masked(e.raw_field, 1024),
                                          e.code, e.message]))
    with psycopg.connect(ARGS.database_url) as side:
        with side.cursor() as c:
            for view, columns, rows in (("sys_load_error_detail", SYS_COLUMNS, sys_rows), ("stl_load_errors", STL_COLUMNS, stl_rows)):
                c.executemany(
                    f"INSERT INTO public.{view} ({', '.join(n for n, _, _ in columns)}) VALUES ({', '.join(['%s'] * len(columns))})",
                    rows,
                )


def fit(columns, values):
    """Values cut to the widths of the views' character columns."""
    return [v[:w] if w and isinstance(v, str) else v for (_, _, w), v in zip(columns, values)]


def run_copy(cur, sql, query_id, session):
    m = COPY_RE.match(sql)
    if not m:
        raise psycopg.errors.SyntaxError("test server: unsupported COPY form: " + sql[:200])
    table, src, opts = m.group("table"), m.group("src"), m.group("opts")
    names = [c.strip() for c in m.group("cols").split(",")]
    noshred = re.search(r"JSON\s+'noshred'", opts, re.I)
    paths_m = re.search(r"JSON\s+'(s3://[^']+)'", opts, re.I)
    if not paths_m and not noshred:
        raise psycopg.errors.SyntaxError("test server: COPY needs FORMAT AS JSON 's3://…jsonpaths' or 'noshred'")
    if not re.search(r"IAM_ROLE\s+'arn:aws:iam::[0-9]{12}:role/[^']+'", opts, re.I):
        raise psycopg.errors.InvalidParameterValue("IAM_ROLE must be a role ARN")
    maxerror_m = re.search(r"\bMAXERROR\s+(?:AS\s+)?(\d+)\b", opts, re.I)
    maxerror = min(int(maxerror_m.group(1)), MAXERROR_LIMIT) if maxerror_m else 0
    truncate = bool(re.search(r"\bTRUNCATECOLUMNS\b", opts, re.I))
    # 'noshred': the whole document into the one (SUPER) column.
    paths = ["$"] if noshred else json.loads(s3_get(paths_m.group(1)))["jsonpaths"]
    if len(paths) != len(names):
        raise psycopg.errors.InvalidParameterValue(
            f"Number of jsonpaths and the number of columns should match. JSONPath size: {len(paths)}, Number of columns in table or column list: {len(names)}")
    parts = [parse_jsonpath(p) for p in paths]
    raw = s3_get(src)
    if re.search(r"\bGZIP\b", opts, re.I):
        raw = gzip.decompress(raw)
    elif re.search(r"\bZSTD\b", opts, re.I):
        import zstandard
        raw = zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    cols, table_id = target_columns(cur, table, names, truncate)
    # The load has begun: this COPY is the session's last (PG_LAST_COPY_ID).
    session.last_copy_id, session.last_copy_count = query_id, 0
    started = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    failed = psycopg.errors.InternalError(
        f"Load into table '{table.split('.')[-1].strip(chr(34))}' failed. Check 'sys_load_error_detail' system table for details.")
    errors, rows = [], []

    def reject(err, n, line):
        err.line_number, err.raw_line = n, line
        errors.append(err)
        if len(errors) > maxerror:
            session.xid = current_xid(cur)
            record_load_errors(session, errors, src, table_id, query_id, started)
            raise failed

    # Redshift's checks in Python, then one PostgreSQL COPY of what passed.
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append((n, line_row(line, cols, parts, noshred)))
        except LineError as err:
            reject(err, n, line)
    by_line = dict(enumerate(lines, 1))
    try:
        "".join(r for _, r in rows).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (\ud800): not UTF-8
        kept = []
        for n, r in rows:
            try:
                r.encode("utf-8")
                kept.append((n, r))
            except UnicodeEncodeError:
                reject(LineError(1220, "String contains invalid or unsupported UTF8 codepoints (a lone surrogate)"), n, by_line[n])
        rows = kept
    # What PostgreSQL still refuses (dates, timestamps…): the file again
    # from the refused line on, each line at most twice.
    loaded, pending = 0, rows
    while pending:
        cur.execute("SAVEPOINT rsd_copy")
        try:
            copy_rows(cur, table, cols, pending)
            cur.execute("RELEASE SAVEPOINT rsd_copy")
            loaded += len(pending)
            break
        except psycopg.Error as e:
            if not data_error(e):
                raise
            cur.execute("ROLLBACK TO SAVEPOINT rsd_copy")
            cur.execute("RELEASE SAVEPOINT rsd_copy")
            at, err = pg_line_error(e, cols)
            if at is None or not 1 <= at <= len(pending):
                err.line_number = 0
                errors.append(err)
                session.xid = current_xid(cur)
                record_load_errors(session, errors, src, table_id, query_id, started)
                raise failed
            n = pending[at - 1][0]
            reject(err, n, by_line[n])
            if at > 1:
                copy_rows(cur, table, cols, pending[:at - 1])
                loaded += at - 1
            pending = pending[at:]
    if errors:
        session.xid = current_xid(cur)
        record_load_errors(session, errors, src, table_id, query_id, started)
    session.last_copy_count = loaded
    return loaded


def current_xid(cur):
    cur.execute("SELECT txid_current()")
    return cur.fetchone()[0]


class Statement:
    def __init__(self, sqls, batch, params):
        self.id = str(uuid.uuid4())
        self.sqls = sqls
        self.batch = batch
        self.params = params
        self.status = "SUBMITTED"
        self.error = None
        self.created = self.updated = now()
        self.subs = [
            {"Id": f"{self.id}:{i + 1}", "Status": "SUBMITTED", "QueryString": s,
             "CreatedAt": self.created, "UpdatedAt": self.created, "HasResultSet": False,
             "ResultRows": -1, "RedshiftQueryId": 0, "Duration": -1}
            for i, s in enumerate(sqls)
        ]
        self.results = [None] * len(sqls)
        self.pid = None
        self.cancelled = False
        # The session (a batch is one): its last COPY, for pg_last_copy_id()
        # and pg_last_copy_count(); its database and transaction, for the
        # load error views.
        self.last_copy_id, self.last_copy_count = -1, 0
        self.database, self.xid = "", None

    def set(self, status, error=None):
        self.status, self.updated = status, now()
        if error is not None:
            self.error = error

    def run(self):
        self.set("STARTED")
        started = time.time()
        try:
            with psycopg.connect(ARGS.database_url) as conn:
                self.pid = conn.info.backend_pid
                self.database = conn.info.dbname
                with conn.cursor() as cur:
                    for i, sql in enumerate(self.sqls):
                        sub = self.subs[i]
                        sub["Status"], sub["UpdatedAt"] = "STARTED", now()
                        sub["RedshiftQueryId"] = next(QUERY_IDS)
                        if RULES["abort_matching"] and RULES["abort_matching"] in sql:
                            raise Aborted()
                        if self.cancelled:
                            raise Aborted()
                        try:
                            if RULES["fail_matching"] and RULES["fail_matching"] in sql:
                                raise psycopg.errors.InternalError("test server: failing as asked")
                            if re.match(r"^\s*COPY\b", sql, re.I):
                                rows = run_copy(cur, translate(sql, self), sub["RedshiftQueryId"], self)
                                sub["ResultRows"] = rows
                            else:
                                cur.execute(translate(sql, self), self.params or None)
                                if cur.description:
                                    cols = [d.name for d in cur.description]
                                    types = [d.type_code for d in cur.description]
                                    self.results[i] = (cols, types, cur.fetchall())
                                    sub["HasResultSet"] = True
                                    sub["ResultRows"] = len(self.results[i][2])
                                else:
                                    sub["ResultRows"] = max(cur.rowcount, 0)
                        except psycopg.errors.QueryCanceled:
                            raise Aborted()
                        except psycopg.Error as e:
                            sub["Status"], sub["Error"] = "FAILED", f"ERROR: {e.diag.message_primary if e.diag and e.diag.message_primary else e}"
                            raise
                        sub["Status"], sub["UpdatedAt"] = "FINISHED", now()
                        sub["Duration"] = int((time.time() - started) * 1e9)
                    delay = RULES["delay_ms"] / 1000 - (time.time() - started)
                    slow = RULES["delay_matching"] is None or any(RULES["delay_matching"] in q for q in self.sqls)
                    if delay > 0 and slow:
                        time.sleep(delay)
                    if self.cancelled:
                        raise Aborted()
                conn.commit()
            self.set("FINISHED")
        except Aborted:
            for s in self.subs:
                if s["Status"] in ("SUBMITTED", "STARTED", "FINISHED"):
                    s["Status"] = "ABORTED"
            self.set("ABORTED", "Query (statement) was aborted")
        except psycopg.Error as e:
            msg = e.diag.message_primary if e.diag and e.diag.message_primary else str(e)
            for s in self.subs:
                if s["Status"] in ("SUBMITTED", "STARTED"):
                    s["Status"] = "ABORTED"
            self.set("FAILED", f"ERROR: {msg}")
        except Exception as e:  # noqa: BLE001 - reported as the statement's error
            self.set("FAILED", f"ERROR: test server: {e!r}")

    def describe(self):
        first = self.subs[0]
        out = {
            "Id": self.id, "Status": self.status, "CreatedAt": self.created, "UpdatedAt": self.updated,
            "Duration": int((self.updated - self.created) * 1e9), "HasResultSet": any(s["HasResultSet"] for s in self.subs),
            "QueryString": "; ".join(self.sqls), "RedshiftPid": self.pid or 0, "RedshiftQueryId": first["RedshiftQueryId"],
            "ResultRows": first["ResultRows"] if not self.batch else -1,
        }
        if self.error:
            out["Error"] = self.error
        if self.batch:
            out["SubStatements"] = self.subs
        return out


def field(v):
    if v is None:
        return {"isNull": True}
    if isinstance(v, bool):
        return {"booleanValue": v}
    if isinstance(v, int):
        return {"longValue": v}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, (dict, list)):
        return {"stringValue": json.dumps(v)}
    return {"stringValue": str(v)}


def target_of(req):
    for k in ("ClusterIdentifier", "WorkgroupName"):
        if req.get(k):
            return
    raise ApiError("ValidationException", "Either ClusterIdentifier or WorkgroupName is required")


def op_execute(req, batch):
    target_of(req)
    if not req.get("Database"):
        raise ApiError("ValidationException", "Database is required")
    token = req.get("ClientToken")
    with LOCK:
        if token and token in TOKENS:
            st = STATEMENTS[TOKENS[token]]
            return {"Id": st.id, "CreatedAt": st.created, "Database": req["Database"]}
        sqls = req["Sqls"] if batch else [req["Sql"]]
        params = None
        if not batch and req.get("Parameters"):
            params = {p["name"]: p["value"] for p in req["Parameters"]}
            sqls = [re.sub(r":([A-Za-z_][A-Za-z0-9_]*)", r"%(\1)s", sqls[0])]
        st = Statement(sqls, batch, params)
        STATEMENTS[st.id] = st
        if token:
            TOKENS[token] = st.id
    threading.Thread(target=st.run, daemon=True).start()
    return {"Id": st.id, "CreatedAt": st.created, "Database": req["Database"],
            "ClusterIdentifier": req.get("ClusterIdentifier"), "WorkgroupName": req.get("WorkgroupName")}


def statement(req):
    sid = req.get("Id", "")
    base = sid.split(":")[0]
    st = STATEMENTS.get(base)
    if st is None:
        raise ApiError("ResourceNotFoundException", f"Query does not exist: {sid}")
    return st, sid


def op_describe(req):
    st, _ = statement(req)
    return st.describe()


def op_result(req):
    st, sid = statement(req)
    if st.status != "FINISHED":
        raise ApiError("ValidationException", f"Query {sid} is not finished: {st.status}")
    index = int(sid.split(":")[1]) - 1 if ":" in sid else 0
    res = st.results[index]
    if res is None:
        raise ApiError("ValidationException", "Query does not have result. Please check query status with DescribeStatement.")
    cols, types, rows = res
    return {
        "ColumnMetadata": [{"name": c, "label": c, "typeName": str(t)} for c, t in zip(cols, types)],
        "Records": [[field(v) for v in row] for row in rows],
        "TotalNumRows": len(rows),
    }


def op_cancel(req):
    st, _ = statement(req)
    if st.status not in ("SUBMITTED", "PICKED", "STARTED"):
        raise ApiError("ValidationException", f"Could not cancel a query that is already in {st.status} state")
    st.cancelled = True
    if st.pid:
        with psycopg.connect(ARGS.database_url, autocommit=True) as side:
            side.execute("SELECT pg_cancel_backend(%s)", (st.pid,))
    return {"Status": True}


OPS = {
    "ExecuteStatement": lambda r: op_execute(r, False),
    "BatchExecuteStatement": lambda r: op_execute(r, True),
    "DescribeStatement": op_describe,
    "GetStatementResult": op_result,
    "CancelStatement": op_cancel,
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        if ARGS.verbose:
            super().log_message(*a)

    def reply(self, status, doc):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.reply(200, {"ok": True, "statements": len(STATEMENTS)})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/_test/rules":
            RULES.update({"fail_matching": None, "abort_matching": None, "delay_ms": 0, "delay_matching": None})
            RULES.update(json.loads(body or b"{}"))
            return self.reply(200, RULES)
        target = self.headers.get("X-Amz-Target", "")
        op = target.split(".", 1)[-1]
        if op not in OPS:
            return self.reply(400, {"__type": "UnknownOperationException", "message": f"unsupported: {target}"})
        try:
            self.reply(200, OPS[op](json.loads(body or b"{}")))
        except ApiError as e:
            self.reply(e.status, {"__type": e.kind, "message": e.message})


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--database-url", required=True)
    p.add_argument("--verbose", action="store_true")
    ARGS = p.parse_args()
    # The load error views, as tables (created, or given the columns an older
    # server did not have); servers sharing a database take turns.
    with psycopg.connect(ARGS.database_url, autocommit=True) as c:
        c.execute("SELECT pg_advisory_lock(72657364)")
        for view, columns in (("sys_load_error_detail", SYS_COLUMNS), ("stl_load_errors", STL_COLUMNS)):
            c.execute(f"CREATE TABLE IF NOT EXISTS public.{view} ({', '.join(f'{n} {t}' for n, t, _ in columns)})")
            for n, t, _ in columns:
                c.execute(f"ALTER TABLE public.{view} ADD COLUMN IF NOT EXISTS {n} {t}")
        c.execute("SELECT pg_advisory_unlock(72657364)")
    server = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    print(f"redshift data api test server on http://127.0.0.1:{ARGS.port}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
