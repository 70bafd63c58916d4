#!/usr/bin/env python3
"""A Redshift Data API server for tests, running the statements on PostgreSQL.

moto's redshift-data cannot serve the Rust SDK (ISO timestamps where the SDK
expects epoch numbers; statements never finish; no SQL runs), so the
project provides this one. It speaks the Data API wire protocol (AWS JSON
1.1, `X-Amz-Target: RedshiftData.<Operation>`) for ExecuteStatement,
BatchExecuteStatement, DescribeStatement, GetStatementResult and
CancelStatement, and runs each statement for real on PostgreSQL, on a
thread of its own, so statuses move SUBMITTED -> STARTED -> FINISHED /
FAILED / ABORTED as they do on Redshift. A batch runs in one transaction.

The Redshift dialect it understands beyond PostgreSQL's, as far as the
loader uses it:
- `COPY t (cols) FROM 's3://b/k' IAM_ROLE '…' FORMAT AS JSON 's3://b/paths'
  GZIP|ZSTD TIMEFORMAT 'auto' …`: the object is read from S3 (moto, through
  boto3 and AWS_ENDPOINT_URL), decompressed, mapped through the jsonpaths
  file and streamed into the table with PostgreSQL's COPY. A row that does
  not fit fails the COPY like Redshift's does: the message points to
  `sys_load_error_detail`, which gets (query_id, file_name, line_number,
  column_name, error_message) outside the failed transaction.
- `SUPER` is `jsonb`; `GETDATE()` is `now()::timestamp`.

Test hooks (POST /_test/rules, JSON): {"fail_matching": "text"} fails
statements whose SQL contains the text, {"abort_matching": "text"} aborts
them, {"delay_ms": N} makes every statement (or, with "delay_matching":
"text", those whose SQL contains the text) take at least N ms.

Usage: redshift_data_server.py --port N --database-url postgres://…
"""

import argparse
import gzip
import io
import itertools
import json
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


def translate(sql):
    """Redshift spellings PostgreSQL lacks."""
    sql = re.sub(r"\bGETDATE\(\)", "now()::timestamp", sql, flags=re.I)
    sql = re.sub(r"\bSUPER\b", "jsonb", sql)
    return sql


COPY_RE = re.compile(
    r"^\s*COPY\s+(?P<table>\S+?)\s*\((?P<cols>[^)]*)\)\s+FROM\s+'(?P<src>s3://[^']+)'(?P<opts>.*)$",
    re.I | re.S,
)


def s3_get(uri):
    bucket, key = uri[len("s3://"):].split("/", 1)
    client = boto3.client("s3")
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()


def jsonpath_get(doc, path):
    # $['a']['b'] or $.a.b ($ alone: the document)
    parts = re.findall(r"\['((?:[^'\\]|\\.)*)'\]|\.([A-Za-z0-9_]+)", path[1:])
    at = doc
    for quoted, plain in parts:
        name = quoted if quoted else plain
        if not isinstance(at, dict) or name not in at:
            return None
        at = at[name]
    return at


def copy_text(v):
    if v is None:
        return "\\N"
    if isinstance(v, bool):
        return "t" if v else "f"
    if isinstance(v, (dict, list)):
        v = json.dumps(v, separators=(",", ":"), ensure_ascii=False)
    s = str(v)
    return (s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r"))


def run_copy(cur, sql, query_id):
    m = COPY_RE.match(sql)
    if not m:
        raise psycopg.errors.SyntaxError("test server: unsupported COPY form: " + sql[:200])
    table, src, opts = m.group("table"), m.group("src"), m.group("opts")
    cols = [c.strip() for c in m.group("cols").split(",")]
    noshred = re.search(r"JSON\s+'noshred'", opts, re.I)
    paths_m = re.search(r"JSON\s+'(s3://[^']+)'", opts, re.I)
    if not paths_m and not noshred:
        raise psycopg.errors.SyntaxError("test server: COPY needs FORMAT AS JSON 's3://…jsonpaths' or 'noshred'")
    if not re.search(r"IAM_ROLE\s+'arn:aws:iam::[0-9]{12}:role/[^']+'", opts, re.I):
        raise psycopg.errors.InvalidParameterValue("IAM_ROLE must be a role ARN")
    # 'noshred': the whole document into the one (SUPER) column.
    paths = ["$"] if noshred else json.loads(s3_get(paths_m.group(1)))["jsonpaths"]
    if len(paths) != len(cols):
        raise psycopg.errors.InvalidParameterValue(
            f"Number of jsonpaths and the number of columns should match. JSONPath size: {len(paths)}, Number of columns in table or column list: {len(cols)}")
    raw = s3_get(src)
    if re.search(r"\bGZIP\b", opts, re.I):
        raw = gzip.decompress(raw)
    elif re.search(r"\bZSTD\b", opts, re.I):
        import zstandard
        raw = zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    buf = io.StringIO()
    for n, line in enumerate(lines, 1):
        doc = json.loads(line)
        buf.write("\t".join(copy_text(jsonpath_get(doc, p)) for p in paths) + "\n")
    try:
        with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as cp:
            cp.write(buf.getvalue())
    except psycopg.Error as e:
        ctx = (e.diag.context or "") if e.diag else ""
        line_m = re.search(r"line (\d+)(?:, column (\w+))?", ctx)
        line_no = int(line_m.group(1)) if line_m else 0
        column = ((line_m.group(2) if line_m else None) or (e.diag.column_name if e.diag else None) or "")
        with psycopg.connect(ARGS.database_url, autocommit=True) as side:
            side.execute(
                "INSERT INTO public.sys_load_error_detail VALUES (%s, %s, %s, %s, %s)",
                (query_id, src, line_no, column, (e.diag.message_primary if e.diag else str(e)) or str(e)),
            )
        raise psycopg.errors.InternalError(
            f"Load into table '{table.split('.')[-1].strip(chr(34))}' failed. Check 'sys_load_error_detail' system table for details.")
    return len(lines)


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
                                rows = run_copy(cur, translate(sql), sub["RedshiftQueryId"])
                                sub["ResultRows"] = rows
                            else:
                                cur.execute(translate(sql), self.params or None)
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
    with psycopg.connect(ARGS.database_url, autocommit=True) as c:
        c.execute("""CREATE TABLE IF NOT EXISTS public.sys_load_error_detail (
            query_id BIGINT, file_name TEXT, line_number BIGINT, column_name TEXT, error_message TEXT)""")
    server = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    print(f"redshift data api test server on http://127.0.0.1:{ARGS.port}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
