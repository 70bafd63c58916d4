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
statements whose SQL contains the text (with "fail_message": "…", that
error instead of "test server: failing as asked", and with "fail_times": N
only the first N of them, e.g. a serializable isolation violation that a
retry gets past), {"abort_matching": "text"} aborts them, {"delay_ms": N} makes every statement (or, with "delay_matching":
"text", those whose SQL contains the text) take at least N ms. Each POST
replaces these four; "cost_model" (below) stays as it is unless named;
{"reset_stats": true} also resets the counters.

Long polling: ExecuteStatement, BatchExecuteStatement and DescribeStatement
take WaitTimeSeconds (0-30): the reply waits until the statement ends or the
time passes (scaled by time_scale while the cost model is on); Execute's
reply then also has Status, RedshiftPid and HasResultSet [long polling].

Cost model: Redshift's costs on top of PostgreSQL's, for benchmarks.
OFF by default (tests keep their speed and behaviour). On with
`--cost-model [--time-scale 0.01] [--cost-model-json '{"commit_s": 1}']`, or
POST /_test/rules {"cost_model": {"enabled": true, "time_scale": 0.01, …}}:
every field not given takes its default; {"cost_model": {"enabled": false}}
or null turns it off. The real PostgreSQL work still runs (what is loaded
is checked for real), and the simulated time comes from the model alone (see
"The simulated clock" below): the real time the stand-ins take is no part of
it. time_scale only paces the real run: each step below lasts at least its
simulated time × time_scale (the server sleeps what the real work did not
take, while holding the locks Redshift would hold), so that while the
stand-ins keep up the real order of events follows the model's. A step whose
real work took longer is an overrun (counted by step, reported as a check on
the stand-ins: the simulated figure does not include it). To keep the
real floor low while the model is on, a transaction takes a PostgreSQL
connection opened ahead (still a new backend: its own session and pid), and
a jsonpaths URI is read from S3 once (the loader names them by a hash of
their content). At 1/100 the real floor left is about 1-2 ms a DDL statement
(over statement_s's 1 ms: 0.1 simulated s too many) and 8-10 ms a small COPY
(within copy_s's 15 ms). Simulated seconds,
with the source of each default or ASSUMED where the sources give no figure:
- api_latency_s 0.02, every Data API call, before it is served: ASSUMED (an
  in-region HTTPS round trip). No lock.
- call_s 0.3, each ExecuteStatement / BatchExecuteStatement before its first
  statement (status SUBMITTED until then): the Data API's session and
  connection. ASSUMED, within the 200-500 ms
  "connection overhead" a Data API client reports without session reuse
  [redshift-spectra]. No lock.
- statement_s 0.1, each statement but COPY (a batch's statements run one
  after the other [Data API]): ASSUMED, the same client's 50-100 ms a query
  on a reused session, rounded up [redshift-spectra].
- copy_s 1.5 + copy_per_mb_s 0.1 a MB (2^20 bytes) of the object
  UNCOMPRESSED (+ copy_per_compressed_mb_s 0 a MB as stored), each COPY.
  Uncompressed, because a gzipped JSON file is not split: one slice
  decompresses and parses all of it, and that, not the in-region S3 read,
  grows with it [Loading data files]. Both ASSUMED: AWS gives no per-COPY
  figure, only that 1 MB-1 GB compressed files, a multiple of the slice
  count, load best [Loading data files] and that concurrent COPYs into one
  table load serially [Use a single COPY command]; copy_s stands for the
  leader's planning, listing the FROM prefix and reading the object, the
  COPY ANALYZE a table without DISTSTYLE gets [COPY ANALYZE], the block
  writes.
- Table write locks [Concurrent write examples; Write and read/write
  operations]: a transaction takes a table's lock at its first COPY into it
  or INSERT, DELETE, UPDATE, MERGE, TRUNCATE, ALTER, DROP of it (write_locks
  true; false: COPYs and LOCK only) or at `LOCK t`, and holds every lock to
  its commit or rollback, then releases all at once; another transaction
  that writes that table waits. So COPYs into one table are serialized, into
  different tables they overlap. A COPY into a TEMP table of the session (the
  loader's staging table: no other session can write it) keys on the FINAL
  table: each permanent table that a later INSERT of the same batch fills
  with a top-level `FROM stage` (copy_lock "final"; "target": the COPY's own
  target, literally Redshift, where a TEMP stage never contends and the wait
  starts at the INSERT; "none"). So the old plan (LOCK ledger first, then one
  file: PostgreSQL's real LOCK agrees) runs one load at a time, and a plan
  with a lock per table, or none, overlaps loads of different tables until
  they write a table they share (the ledger, the rejects) or commit.
  copy_serial_fraction 1.0: the share of a COPY's time spent holding the
  lock (serializable isolation: all of it; under snapshot isolation COPYs
  into one table proceed together "until either needs to write" to it, then
  one at a time [Concurrent write examples]: a smaller share, ASSUMED). A wait
  that would close a cycle fails "deadlock detected" (Redshift's advice:
  lock tables in one order [Write and read/write operations]); a wait longer
  than lock_timeout_s 3600 fails (a backstop for a cycle through a
  PostgreSQL lock, which the model cannot see).
- commit_s 0.6 (+ commit_per_mb_s 0 a MB COPYed in the transaction) at the
  end of a batch or ExecuteStatement that wrote a permanent table or the
  catalog: the sample commit takes 617 ms on the leader, 616 on the nodes
  [STL_COMMIT_STATS]. Commits run one at a time cluster-wide, in arrival
  order: the commit queue (queuelen: "transactions that were ahead of this
  transaction in the commit queue" [STL_COMMIT_STATS]; Redshift advises few
  commits, as they are expensive [deep dive]). A transaction that wrote only
  TEMP tables does not pay it (temporary tables "do not trigger a full
  commit" [deep dive]); a rollback costs nothing (ASSUMED).
- wlm_slots 0 (no limit): at most that many transactions at once, the
  others wait (a manual WLM queue's slots; ASSUMED off, Auto WLM varies).
  copy_slots 0 (no limit): at most that many COPYs at once (a one-file COPY
  loads on one slice: the slice count; ASSUMED off).
- quotas, calls a simulated second: ExecuteStatement 30, GetStatementResult
  20, DescribeStatement 100 [jitsu: "per region, non-adjustable"],
  BatchExecuteStatement 20 (ASSUMED); a burst of one second's worth
  (ASSUMED); measured on the virtual clock's latest time. Calls over them are counted (over_quota); with throttle true
  they fail with ThrottlingException "Rate exceeded" (off by default: the
  SDK's retry backoff is real time, unscaled).
Not modelled: WLM and its queues beyond wlm_slots, short query acceleration,
concurrency scaling, query compilation (a new statement shape: seconds the
first time), vacuum, analyze and automatic table maintenance, result
caching, the network beyond api_latency_s, slices and file sizes beyond the
per-MB rate (multi-file COPYs, skew, the cluster's size), the tables' size
(a DELETE scans a growing table), Serializable isolation violations (1023),
the Data API's limits on active statements, throttling unless throttle is
on, and the client's own time: it sees a statement end one api_latency_s
after the end (ideal long polling; a poll that does not see the end costs
nothing; poll_lag_s reports the real lag), and its work between calls is
free.

The simulated clock (issue #27; the model alone, not the real time):
- Virtual time starts at 0 when the statistics are reset (or a cost model is
  set). Each transaction has a virtual clock: it starts at the virtual time
  its client submitted it plus api_latency_s, advances by call_s, then by
  each statement's and its commit's modelled cost, in the order the client
  sent them; its end is when its client may see it.
- Shared resources keep the virtual time they are free again: each table's
  write lock (the virtual time its holder committed or rolled back; an
  explicit LOCK also makes reads of the table wait if they fall within it
  [LOCK]), the commit queue (one commit at a time: a commit starts at
  max(ready, the previous commit's end)), the WLM and COPY slots. A
  transaction that takes one waits until max(its clock, free-at): the waits
  reported (table_lock_s, commit_queue_s, wlm_s, copy_slot_s) are these.
- The real locks, queue and slots are still taken (the real work must not
  interleave wrongly), so who goes first is decided in real time; to make
  that the model's order, a transaction takes a shared resource only when
  no transaction in flight that may still take it is behind it in virtual
  time (the Gate; "virtual_order": false turns it off), nor while a client
  whose last statement ended before it has not submitted again, for up to
  pending_wait_s (0.25) real seconds. Its limits: it does not see a
  client's next transaction before it is submitted (beyond that wait), and
  does not wait more than 2 real seconds for one busy in a real step
  (possibly blocked inside PostgreSQL) nor more than 60 in all
  (gate_timeouts counts those).
- Clients. The Data API names no client, so the server infers them. A
  client is a chain of statements, each submitted after the client saw the
  one before end (the loader's workers: submit, long-poll DescribeStatement
  until the end, maybe GetStatementResult, submit again). Seeing an end
  (DescribeStatement or ExecuteStatement's WaitTimeSeconds reporting
  FINISHED, FAILED or ABORTED, the first time) sets the client's clock to
  max(its clock, the end) + api_latency_s and makes it idle;
  GetStatementResult and CancelStatement add api_latency_s to the
  statement's client. A new submission is given, in this order: the idle
  client whose last statement named the most of the same S3 objects (the
  same unit of work: the loader's ledger read, then its batch), or the same
  table (created in this run by CREATE TABLE, or a segment of an S3
  object's path: a unit's CREATE TABLE, then its ledger read); else the
  idle client with the earliest clock (a pool of workers: the one free first
  takes the next unit); else a new client, starting at the clock of the
  last end any client saw (in real order: a process connecting its workers
  one after another). Limits: the choice among idle clients depends on
  which are idle at that real moment; a worker that waits for work (more
  workers than tables with work) keeps an old clock, and a unit it starts
  later may begin early by the steps before its first lock (its table's
  lock then holds it back); a client that submits without seeing an end
  first (two statements at once from one worker) is two clients. With one
  client at a time, the figure is exact; tests/loader/redshift_clock.rs
  checks the arithmetic and a load idle and with 300 ms added to each
  transaction (equal with one worker, within 5% with two).
- "simulated" {wall_s, wall_h}: virtual 0 to the last end or sighting;
  busy_s: virtual time with at least one transaction running;
  real_wall_h: the old figure, real time / time_scale, for comparison.

GET /_test/stats (JSON; counted whether the model is on or not; POST
/_test/stats/reset, or "reset_stats" in the rules, resets it): "calls" by
operation, "over_quota" and "throttled" by operation, "statements",
"executes", "batches", "transactions" (committed), "commits" (committed
having written anything), "charged_commits" (paid commit_s), "failed",
"aborted", "copies", "copy_bytes" (as stored), "copy_bytes_uncompressed",
"copy_rows", "overruns", "deadlocks", "lock_timeouts", "polls_observed",
"running", "real" {wall_s: first start to last end, busy_s: time with at
least one transaction running, first_start, last_end}, "commit_queue"
{max_len, mean_len} (real), "gate_timeouts", "tables" {name: {copies,
copy_bytes, lock_waits, read_waits, lock_wait_s, held_s (simulated: the
time its write lock was held, summed)}}, "cost_model" (the configuration),
and, while the model is on, "simulated" {model_only: true, wall_s, busy_s,
wall_h, busy_h (the virtual clock: the simulated time, concurrency
included), clients, real_wall_h, work {api_s, call_s, statement_s, copy_s,
commit_s} (modelled costs; api_s counts every call) and waits
{commit_queue_s, table_lock_s, wlm_s, copy_slot_s} (simulated, sums over
transactions), overrun_s (real time beyond the pace, in simulated seconds),
overruns_by_step {step: {n, s}}, poll_lag_s (real: statement end to the
DescribeStatement that saw it, summed, / time_scale), poll_lag_max_s}.

Sources:
[STL_COMMIT_STATS] https://docs.aws.amazon.com/redshift/latest/dg/r_STL_COMMIT_STATS.html
[Concurrent write examples] https://docs.aws.amazon.com/redshift/latest/dg/r_Serializable_isolation_example.html
  (its snapshot-isolation section read in https://docs.amazonaws.cn/redshift/latest/dg/r_Serializable_isolation_example.html)
[Write and read/write operations] https://docs.aws.amazon.com/redshift/latest/dg/c_write_readwrite.html
[LOCK] https://docs.aws.amazon.com/redshift/latest/dg/r_LOCK.html
[Use a single COPY command] https://docs.aws.amazon.com/redshift/latest/dg/c_best-practices-single-copy-command.html
[Loading data files] https://docs.aws.amazon.com/redshift/latest/dg/c_best-practices-use-multiple-files.html
[COPY ANALYZE] https://aws.amazon.com/premiumsupport/knowledge-center/redshift-fix-copy-analyze-statupdate-off/
[Data API] https://docs.aws.amazon.com/redshift/latest/mgmt/data-api.html
[long polling] https://docs.aws.amazon.com/redshift/latest/mgmt/data-api-calling-considerations-long-polling.html
[jitsu] https://github.com/jitsucom/jitsu/pull/1462 (the Data API's TPS quotas)
[redshift-spectra] https://zhiweio.github.io/redshift-spectra/performance/overview
[deep dive] https://deepaksood619.github.io/databases/sql-databases/aws-redshift/deep-dive-best-practices
  (notes of AWS's Redshift deep dive talk)

RSD_TRACE=path (environment): one JSON line per transaction under the model
(client, virtual submit and end, first statement), for looking into the
virtual clock.

Usage: redshift_data_server.py --port N --database-url postgres://…
       [--cost-model] [--time-scale S] [--cost-model-json '{…}']
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
import botocore.config
import psycopg

STATEMENTS = {}
TOKENS = {}
RULE_DEFAULTS = {"fail_matching": None, "fail_message": None, "fail_times": None,
                 "abort_matching": None, "delay_ms": 0, "delay_matching": None}
RULES = dict(RULE_DEFAULTS)
LOCK = threading.Lock()
QUERY_IDS = itertools.count(1000)
ARGS = None


class ApiError(Exception):
    def __init__(self, kind, message, status=400):
        super().__init__(message)
        self.kind, self.message, self.status = kind, message, status


class Aborted(Exception):
    pass


# ---- The cost model (off by default; see the module docstring) ------------

# Simulated seconds unless named otherwise; each with its source in the
# module docstring.
COST_DEFAULTS = {
    "enabled": False,
    "time_scale": 0.01,
    "api_latency_s": 0.02,
    "call_s": 0.3,
    "statement_s": 0.1,
    "copy_s": 1.5,
    "copy_per_mb_s": 0.1,
    "copy_per_compressed_mb_s": 0.0,
    "commit_s": 0.6,
    "commit_per_mb_s": 0.0,
    "copy_lock": "final",
    "copy_serial_fraction": 1.0,
    "write_locks": True,
    "wlm_slots": 0,
    "copy_slots": 0,
    "lock_timeout_s": 3600.0,
    "throttle": False,
    "virtual_order": True,
    "pending_wait_s": 0.25,
    "quotas": {"ExecuteStatement": 30, "BatchExecuteStatement": 20, "DescribeStatement": 100,
               "GetStatementResult": 20},
}
COST_CHOICES = {"copy_lock": ("final", "target", "none")}
MB = 1024 * 1024
# Statements that write nothing: no write lock, no commit.
READ_VERBS = {"SELECT", "WITH", "SHOW", "EXPLAIN", "SET", "RESET", "BEGIN", "START", "COMMIT", "END",
              "ROLLBACK", "ABORT", "ANALYZE", "VACUUM", "VALUES", "FETCH", "DECLARE", "CLOSE", "TABLE", "LOCK"}
NAME = r'(?:"(?:[^"]|"")*"|[A-Za-z_#][\w$#]*)(?:\s*\.\s*(?:"(?:[^"]|"")*"|[A-Za-z_#][\w$#]*))*'
WRITE_TARGETS = {
    "INSERT": re.compile(rf"INSERT\s+INTO\s+({NAME})", re.I),
    "DELETE": re.compile(rf"DELETE\s+(?:FROM\s+)?({NAME})", re.I),
    "UPDATE": re.compile(rf"UPDATE\s+({NAME})", re.I),
    "MERGE": re.compile(rf"MERGE\s+INTO\s+({NAME})", re.I),
    "TRUNCATE": re.compile(rf"TRUNCATE\s+(?:TABLE\s+)?({NAME})", re.I),
    "ALTER": re.compile(rf"ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?({NAME})", re.I),
    "DROP": re.compile(rf"DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?({NAME})", re.I),
    "COPY": re.compile(rf"COPY\s+({NAME})", re.I),
}
CREATE_TEMP_RE = re.compile(rf"CREATE\s+(?:LOCAL\s+)?(TEMP|TEMPORARY\s+)?\s*TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?({NAME})", re.I)
FROM_RE = re.compile(r"\b(?:FROM|JOIN)\s+(.*?)(?=\bWHERE\b|\bGROUP\b|\bORDER\b|\bLIMIT\b|\bUNION\b|\bHAVING\b|"
                     r"\bJOIN\b|\bON\b|\bINTERSECT\b|\bEXCEPT\b|;|$)", re.I | re.S)


def head(sql):
    """The statement without its leading comments and blanks."""
    s = sql.lstrip()
    while s.startswith("--") or s.startswith("/*"):
        s = (s.split("\n", 1)[1] if "\n" in s else "") if s.startswith("--") else s.split("*/", 1)[-1]
        s = s.lstrip()
    return s


def first_word(sql):
    m = re.match(r"[A-Za-z]+", head(sql))
    return m.group(0).upper() if m else ""


def norm(name):
    """A table name as a lock key: unquoted parts lower-cased, quotes off."""
    parts = re.findall(r'"((?:[^"]|"")*)"|([^\s."]+)', name)
    return ".".join(q.replace('""', '"') if q else u.lower() for q, u in parts)


def classify(sql):
    """(kind, table names): "read", "lock", "copy", "write" (DML or DDL on the
    named table), "create_temp", or "ddl" (the catalog, no table named)."""
    s = head(sql)
    verb = first_word(s)
    if verb == "LOCK":
        body = re.sub(r"^LOCK\s+(?:TABLE\s+)?", "", s, flags=re.I)
        body = re.split(r"\bIN\b|;|\bNOWAIT\b", body, flags=re.I)[0]
        return "lock", [norm(n) for n in re.findall(NAME, body)]
    if verb in READ_VERBS:
        return "read", []
    if verb == "CREATE":
        m = CREATE_TEMP_RE.match(s)
        if m and (m.group(1) or m.group(2).startswith("#")):
            return "create_temp", [norm(m.group(2))]
        return "ddl", []
    rx = WRITE_TARGETS.get(verb)
    m = rx.match(s) if rx else None
    if m:
        return ("copy" if verb == "COPY" else "write"), [norm(m.group(1))]
    return "ddl", []


def top_level_from(sql):
    """The tables a statement reads at its top level (not in subqueries)."""
    s = re.sub(r"'(?:[^']|'')*'", "''", sql)
    prev = None
    while prev != s:
        prev, s = s, re.sub(r"\([^()]*\)", " ", s)
    names = set()
    for m in FROM_RE.finditer(s):
        for item in m.group(1).split(","):
            t = re.match(r"\s*(" + NAME + ")", item)
            if t:
                names.add(norm(t.group(1)))
    return names


READ_FROM_RE = re.compile(rf"\b(?:FROM|JOIN)\s+({NAME})", re.I)


def read_tables(sql):
    """The tables a statement reads, at any level (names after FROM or
    JOIN; string literals left out)."""
    s = re.sub(r"'(?:[^']|'')*'", "''", sql)
    return {norm(m.group(1)) for m in READ_FROM_RE.finditer(s)}


class CostModel:
    def __init__(self):
        self.cfg = json.loads(json.dumps(COST_DEFAULTS))

    def configure(self, overrides):
        """The defaults with these fields replaced (ValueError if one is not
        a field or not of its type)."""
        cfg = json.loads(json.dumps(COST_DEFAULTS))
        if not isinstance(overrides, dict):
            raise ValueError("cost_model must be an object")
        for k, v in overrides.items():
            if k not in COST_DEFAULTS:
                raise ValueError(f"unknown cost_model field {k!r} (fields: {', '.join(COST_DEFAULTS)})")
            d = COST_DEFAULTS[k]
            if k == "quotas":
                if not isinstance(v, dict) or any(isinstance(r, bool) or not isinstance(r, (int, float)) or r < 0 for r in v.values()):
                    raise ValueError("quotas: an object of operation: calls a second (0: none)")
                cfg[k] = {**cfg[k], **v}
                continue
            if isinstance(d, bool):
                ok = isinstance(v, bool)
            elif isinstance(d, (int, float)):
                ok = not isinstance(v, bool) and isinstance(v, (int, float)) and v >= 0
            else:
                ok = v in COST_CHOICES[k]
            if not ok:
                raise ValueError(f"cost_model {k}: {v!r} is not valid")
            cfg[k] = v
        if cfg["time_scale"] <= 0:
            raise ValueError("cost_model time_scale must be > 0")
        if cfg["copy_serial_fraction"] > 1:
            raise ValueError("cost_model copy_serial_fraction must be within 0..1")
        self.cfg = cfg
        return cfg

    def current(self):
        """The configuration while the model is on, else None."""
        cfg = self.cfg
        return cfg if cfg["enabled"] else None


class TableLocks:
    """Redshift's table write locks: one transaction holds a table's lock from
    its first write of it to its commit or rollback, when it releases all its
    locks at once; a wait that would close a cycle fails (deadlock)."""

    def __init__(self):
        self.cv = threading.Condition()
        self.owner, self.waiting = {}, {}
        # Tables held by an explicit LOCK: reads of them wait too.
        self.explicit = {}

    def acquire(self, st, name, timeout, explicit=False):
        """Real seconds waited."""
        with self.cv:
            holder = self.owner.get(name)
            if holder is None or holder is st:
                self.owner[name] = st
                st.sim_locks.add(name)
                if explicit:
                    self.explicit[name] = st
                return 0.0
            if self.cycle(st, holder):
                STATS.add("deadlocks")
                raise psycopg.errors.DeadlockDetected(
                    f"deadlock detected: waiting for the write lock on {name}, held by a transaction waiting for this one's"
                    " (test server cost model; take locks in one order)")
            start = time.time()
            self.waiting[st] = name
            try:
                while self.owner.get(name) is not None:
                    if st.cancel_event.is_set():
                        raise Aborted()
                    left = start + timeout - time.time()
                    if left <= 0:
                        STATS.add("lock_timeouts")
                        raise psycopg.errors.LockNotAvailable(
                            f"test server cost model: waited for the write lock on {name} longer than lock_timeout_s"
                            " (a deadlock through a PostgreSQL lock?)")
                    self.cv.wait(min(left, 0.05))
            finally:
                self.waiting.pop(st, None)
            self.owner[name] = st
            st.sim_locks.add(name)
            if explicit:
                self.explicit[name] = st
            return time.time() - start

    def wait_readable(self, st, name, timeout):
        """Waits while another transaction holds an explicit LOCK of the
        table (Redshift's LOCK makes reads wait too [LOCK])."""
        with self.cv:
            start = time.time()
            while self.explicit.get(name, st) is not st:
                if st.cancel_event.is_set():
                    raise Aborted()
                if time.time() - start > timeout:
                    STATS.add("lock_timeouts")
                    raise psycopg.errors.LockNotAvailable(
                        f"test server cost model: waited to read {name} longer than lock_timeout_s")
                self.cv.wait(0.05)

    def cycle(self, st, holder):
        seen = set()
        while holder is not None and id(holder) not in seen:
            if holder is st:
                return True
            seen.add(id(holder))
            wanted = self.waiting.get(holder)
            holder = self.owner.get(wanted) if wanted is not None else None
        return False

    def release_all(self, st):
        if not st.sim_locks:
            return
        with self.cv:
            for name in st.sim_locks:
                if self.owner.get(name) is st:
                    del self.owner[name]
                if self.explicit.get(name) is st:
                    del self.explicit[name]
            st.sim_locks.clear()
            self.cv.notify_all()


class CommitQueue:
    """Commits one at a time, cluster-wide, in arrival order."""

    def __init__(self):
        self.cv = threading.Condition()
        self.queue = []

    def enter(self, st):
        """The number of transactions ahead (STL_COMMIT_STATS.queuelen)."""
        with self.cv:
            ahead = len(self.queue)
            self.queue.append(st)
            while self.queue[0] is not st:
                if st.cancel_event.is_set():
                    self.queue.remove(st)
                    self.cv.notify_all()
                    raise Aborted()
                self.cv.wait(0.05)
            return ahead

    def leave(self, st):
        with self.cv:
            self.queue.remove(st)
            self.cv.notify_all()


class Slots:
    """At most `cap` holders at once (cap 0: no limit)."""

    def __init__(self):
        self.cv = threading.Condition()
        self.active = 0

    def acquire(self, cap, st):
        """Real seconds waited, or None when there is no limit (nothing held)."""
        if not cap:
            return None
        with self.cv:
            start = time.time()
            while self.active >= cap:
                if st.cancel_event.is_set():
                    raise Aborted()
                self.cv.wait(0.05)
            self.active += 1
            return time.time() - start

    def release(self):
        with self.cv:
            self.active -= 1
            self.cv.notify()


class Quotas:
    """Token buckets in simulated time: `rate` calls a simulated second, a
    burst of one second's worth (assumed). Reset with the statistics."""

    def __init__(self):
        self.lock = threading.Lock()
        self.buckets = {}

    def take(self, op, rate, t):
        """A call at simulated second t (the virtual clock's latest time:
        calls arrive in real order, their clients' clocks need not)."""
        with self.lock:
            tokens, last = self.buckets.get(op, (rate, t))
            tokens = min(rate, tokens + max(t - last, 0.0) * rate)
            ok = tokens >= 1
            self.buckets[op] = (tokens - 1 if ok else tokens, max(t, last))
            return ok


class Stats:
    """What the server served, for GET /_test/stats."""

    COUNTS = ("statements", "executes", "batches", "transactions", "commits", "charged_commits", "failed",
              "aborted", "copies", "copy_bytes", "copy_bytes_uncompressed", "copy_rows", "overruns", "deadlocks",
              "lock_timeouts", "polls_observed", "gate_timeouts")

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.calls, self.over_quota, self.throttled = {}, {}, {}
            self.n = dict.fromkeys(self.COUNTS, 0)
            self.work = dict.fromkeys(("api_s", "call_s", "statement_s", "copy_s", "commit_s"), 0.0)
            self.waits = dict.fromkeys(("commit_queue_s", "table_lock_s", "wlm_s", "copy_slot_s"), 0.0)
            self.overrun_s = self.poll_lag_s = self.poll_lag_max_s = 0.0
            self.overrun_by = {}
            self.queue_max = self.queue_sum = 0
            self.tables = {}
            # Transactions running across a reset count from the reset on.
            t = time.time()
            self.running = getattr(self, "running", 0)
            self.busy_since, self.busy_real = (t if self.running else None), 0.0
            self.first, self.last = (t if self.running else None), None
            self.since = t

    def add(self, key, n=1):
        with self.lock:
            self.n[key] += n

    def call(self, op, table="calls"):
        with self.lock:
            d = getattr(self, table)
            d[op] = d.get(op, 0) + 1

    def spent(self, kind, sim_s, waited=False):
        with self.lock:
            (self.waits if waited else self.work)[kind] += sim_s

    def overrun(self, kind, sim_s):
        with self.lock:
            self.n["overruns"] += 1
            self.overrun_s += sim_s
            n, t = self.overrun_by.get(kind, (0, 0.0))
            self.overrun_by[kind] = (n + 1, t + sim_s)

    def table(self, name, **inc):
        with self.lock:
            t = self.tables.setdefault(name, {"copies": 0, "copy_bytes": 0, "lock_waits": 0, "read_waits": 0,
                                              "lock_wait_s": 0.0, "held_s": 0.0})
            for k, v in inc.items():
                t[k] += v

    def queued(self, ahead, sim_wait):
        with self.lock:
            self.queue_max = max(self.queue_max, ahead)
            self.queue_sum += ahead
            self.waits["commit_queue_s"] += sim_wait

    def poll_lag(self, real_s):
        cfg = COST.current()
        lag = real_s / cfg["time_scale"] if cfg else real_s
        with self.lock:
            self.n["polls_observed"] += 1
            self.poll_lag_s += lag
            self.poll_lag_max_s = max(self.poll_lag_max_s, lag)

    def begin(self):
        t = time.time()
        with self.lock:
            if self.first is None:
                self.first = t
            if self.running == 0:
                self.busy_since = t
            self.running += 1

    def end(self):
        t = time.time()
        with self.lock:
            self.running -= 1
            self.last = t
            if self.running == 0 and self.busy_since is not None:
                self.busy_real += t - self.busy_since
                self.busy_since = None

    def snapshot(self):
        cfg = COST.cfg
        vwall, vbusy, clients = VCLOCK.figures()
        with self.lock:
            t = time.time()
            wall = (self.last - self.first) if self.first is not None and self.last is not None else 0.0
            if self.running and self.first is not None:
                wall = t - self.first
            busy = self.busy_real + ((t - self.busy_since) if self.busy_since is not None else 0.0)
            r = lambda x: round(x, 6)  # noqa: E731
            out = {
                "cost_model": cfg,
                "since": self.since,
                "calls": dict(self.calls),
                "over_quota": dict(self.over_quota),
                "throttled": dict(self.throttled),
                **self.n,
                "running": self.running,
                "real": {"wall_s": r(wall), "busy_s": r(busy), "first_start": self.first, "last_end": self.last},
                "simulated": None,
                "commit_queue": {"max_len": self.queue_max,
                                 "mean_len": r(self.queue_sum / self.n["charged_commits"]) if self.n["charged_commits"] else 0.0},
                "tables": {k: {**v, "lock_wait_s": r(v["lock_wait_s"]), "held_s": r(v["held_s"])}
                           for k, v in sorted(self.tables.items())},
            }
            if cfg["enabled"]:
                k = cfg["time_scale"]
                out["simulated"] = {
                    "model_only": True,
                    "wall_s": r(vwall), "busy_s": r(vbusy),
                    "wall_h": r(vwall / 3600), "busy_h": r(vbusy / 3600),
                    "clients": clients,
                    "real_wall_h": r(wall / k / 3600),
                    "work": {n: r(v) for n, v in self.work.items()},
                    "waits": {n: r(v) for n, v in self.waits.items()},
                    "overrun_s": r(self.overrun_s),
                    "overruns_by_step": {k: {"n": n, "s": r(t)} for k, (n, t) in sorted(self.overrun_by.items())},
                    "poll_lag_s": r(self.poll_lag_s), "poll_lag_max_s": r(self.poll_lag_max_s),
                }
            return out


class Client:
    """One client of the Data API as the virtual clock sees it: a chain of
    statements, each submitted after the client saw the one before end (the
    loader's workers submit, poll DescribeStatement until the end, maybe
    read the result, and submit again). `clock` is the client's virtual
    time; `keys` the S3 URIs its last statement named (for affinity)."""

    __slots__ = ("n", "clock", "keys")

    def __init__(self, n, clock):
        self.n, self.clock, self.keys = n, clock, frozenset()


S3_LITERAL_RE = re.compile(r"'(s3://(?:[^']|'')*)'")


class VirtualClock:
    """The simulated clock, from the model alone (see "The simulated clock"
    in the module docstring): clients' virtual times, the virtual time each
    shared resource is free again, and the transactions' virtual spans. The
    real locks, queue and slots still decide who goes first; this decides
    only when, in simulated seconds. Reset (with the statistics or a new
    cost model) to virtual time 0, no clients."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.idle = []
            self.clients = 0
            self.hwm = self.last_seen = 0.0
            self.created = set()
            # Clients whose statement ended and that have not submitted
            # again: {client: (virtual end, real time it ended)}.
            self.pending = {}
            self.tables = {}
            self.locked = {}
            self.commit_free = 0.0
            self.slot_cap, self.slot_free, self.slot_held = {}, {}, {}
            self.spans = []

    def advance(self, client, to):
        with self.lock:
            client.clock = max(client.clock, to)
            self.hwm = max(self.hwm, client.clock)

    def submit(self, sqls, api_s):
        """The client that submits these statements, and the virtual time
        the transaction is submitted (after the call's api_latency_s): the
        idle client whose last statement named the most of the same S3
        objects (the next step of one unit of work), or else the same table
        (created by CREATE TABLE, or named by a segment of an S3 object's
        path: a unit's CREATE TABLE, then its ledger read); else the idle client
        that became idle first in virtual time (a pool of workers: the one
        free first takes the next unit); else a new client, starting when
        the last end any client saw (in real order) was seen: it may follow
        that (a process connecting its workers one after the other), not
        what is still running."""
        uris = {u for s in sqls for u in S3_LITERAL_RE.findall(s)}
        made = set()
        for s in sqls:
            m = CREATE_TEMP_RE.match(head(s)) if first_word(s) == "CREATE" else None
            if m and not m.group(1) and not m.group(2).startswith("#"):
                made.add(norm(m.group(2)).rsplit(".", 1)[-1])
        with self.lock:
            self.created |= made
            # A table named by the S3 objects: a path segment that is the
            # name of a table created in this run (the routed layout's
            # <type>/ prefix).
            named = {seg for u in uris for seg in u[5:].split("/")[1:-1] if seg in self.created}
            keys = frozenset(uris) | frozenset("table:" + t for t in made | named)
            best = None
            if keys and self.idle:
                shared = [(len(uris & c.keys), len(keys & c.keys)) for c in self.idle]
                if max(shared) > (0, 0):
                    best = shared.index(max(shared))
            if best is None and self.idle:
                best = min(range(len(self.idle)), key=lambda i: (self.idle[i].clock, self.idle[i].n))
            if best is not None:
                client = self.idle.pop(best)
            else:
                self.clients += 1
                client = Client(self.clients, self.last_seen)
            self.pending.pop(client, None)
            client.keys = keys
            client.clock += api_s
            self.hwm = max(self.hwm, client.clock)
            return client, client.clock

    def observed(self, client, vfinish, api_s):
        """The client saw its statement's end (one api_latency_s after the
        later of its poll and the end): it is idle, free to submit again."""
        with self.lock:
            client.clock = max(client.clock, vfinish) + api_s
            self.hwm = max(self.hwm, client.clock)
            self.last_seen = client.clock
            if all(c is not client for c in self.idle):
                self.idle.append(client)

    def ended(self, client, vfinish):
        with self.lock:
            self.pending[client] = (vfinish, time.time())

    def pending_behind(self, v, t, bound):
        """Whether a client whose statement ended before v (virtual) at most
        `bound` real seconds ago has not submitted again: its next
        transaction may come before v."""
        with self.lock:
            return any(at < v and t - since < bound for at, since in self.pending.values())

    def table_free(self, name):
        with self.lock:
            return self.tables.get(name, 0.0)

    def release_tables(self, names, v, explicit):
        """Locks released at v; `explicit`: {table: virtual time its LOCK was
        taken}."""
        with self.lock:
            for n in names:
                self.tables[n] = max(self.tables.get(n, 0.0), v)
            for n, at in explicit.items():
                self.locked[n] = (at, v)

    def locked_span(self, name):
        """(taken, released) of the table's last explicit LOCK, or None."""
        with self.lock:
            return self.locked.get(name)

    def commit(self, v, cost):
        """(start, end) of a commit ready at v: after the one before it (the
        real queue's order), one at a time."""
        with self.lock:
            start = max(v, self.commit_free)
            self.commit_free = start + cost
            return start, self.commit_free

    def slot_take(self, kind, cap, v):
        """The virtual time one of `cap` slots is free for a holder ready at
        v: the slot free first (the real slots make sure one is held by no
        one)."""
        with self.lock:
            if self.slot_cap.get(kind) != cap:
                self.slot_cap[kind] = cap
                self.slot_free[kind] = [0.0] * max(cap - self.slot_held.get(kind, 0), 0)
            free = self.slot_free[kind]
            at = free.pop(free.index(min(free))) if free else v
            self.slot_held[kind] = self.slot_held.get(kind, 0) + 1
            return max(v, at)

    def slot_give(self, kind, v):
        with self.lock:
            self.slot_held[kind] = max(self.slot_held.get(kind, 0) - 1, 0)
            if len(self.slot_free.get(kind, [])) < self.slot_cap.get(kind, 0):
                self.slot_free[kind].append(v)

    def span(self, start, end):
        with self.lock:
            self.spans.append((start, end))
            self.hwm = max(self.hwm, end)

    def figures(self):
        """(wall: virtual 0 to the last event; busy: time with at least one
        transaction running; clients)."""
        with self.lock:
            busy, upto = 0.0, 0.0
            for s, e in sorted(self.spans):
                if e > upto:
                    busy += e - max(s, upto)
                    upto = e
            return self.hwm, busy, self.clients


COST = CostModel()
STATS = Stats()
TABLE_LOCKS = TableLocks()
COMMITS = CommitQueue()
WLM = Slots()
COPY_SLOTS = Slots()
QUOTAS = Quotas()
VCLOCK = VirtualClock()


class Gate:
    """Turns in virtual order at the shared resources. Transactions run on
    threads in real time, so without this the first to reach a lock, the
    commit queue or a slot in REAL time would take it, and its virtual free
    time would make one that reached it earlier in virtual time wait: the
    simulated figure would depend on which stand-in was faster. So before
    taking a shared resource a transaction waits (real time) until no other
    transaction in flight that may still take that resource (its statements
    are known: a table it will lock, write or read, a commit; not if it
    needs first a table this one holds) is behind it in virtual time (a
    lower clock, ties by arrival), except one that is waiting for a resource
    (it cannot move until it gets it) or has been in one real step (a statement on
    PostgreSQL, a connect) longer than `GRACE` real seconds (it may be
    blocked inside PostgreSQL, where the model does not see; or the stand-ins
    are that slow). A client whose statement ended before it in virtual time
    and that has not submitted again counts as behind too, for the cost
    model's pending_wait_s real seconds (0.25: a worker submits its next
    statement at once; one that waits longer is waiting for work, or gone;
    on a machine too busy to submit that fast, raise it). Transactions not yet submitted are not seen: a client
    that submits behind one that already took a resource waits for it. A
    turn longer than `TIMEOUT` real seconds is taken anyway (counted:
    gate_timeouts)."""

    GRACE = 2.0
    TIMEOUT = 60.0

    def __init__(self):
        self.cv = threading.Condition()
        self.sims = set()
        self.seq = itertools.count()

    def enter(self, sim):
        with self.cv:
            sim.seq = next(self.seq)
            self.sims.add(sim)

    def leave(self, sim):
        with self.cv:
            self.sims.discard(sim)
            self.cv.notify_all()

    def moved(self):
        with self.cv:
            self.cv.notify_all()

    def behind(self, sim, t, resource):
        for o in self.sims:
            if o is sim or o.blocked or (o.v, o.seq) >= (sim.v, sim.seq):
                continue
            if o.real_since is not None and t - o.real_since > self.GRACE:
                continue
            if o.may_take(resource, sim):
                return True
        return VCLOCK.pending_behind(sim.v, t, sim.cfg["pending_wait_s"])

    def turn(self, sim, resource):
        """Waits for the turn at `resource`: ("table", name), ("commit",)
        or ("slot", kind)."""
        deadline = time.time() + self.TIMEOUT
        with self.cv:
            while True:
                t = time.time()
                if not self.behind(sim, t, resource):
                    return
                if t >= deadline:
                    STATS.add("gate_timeouts")
                    return
                if sim.st.cancel_event.is_set():
                    raise Aborted()
                self.cv.wait(0.01)


GATE = Gate()
TRACE = __import__('os').environ.get('RSD_TRACE')
TRACE_LOCK = threading.Lock()


class Sim:
    """One transaction (a batch, or an ExecuteStatement) under the cost model.
    Its simulated time is a virtual clock `v`, from the model alone: it
    starts at the virtual time the client submitted it, advances by each
    step's modelled cost, and waits for a shared resource until the virtual
    time its last holder freed it. The real work runs as well (its rows are
    real), and the real locks are still taken, so who goes first is real;
    each step also lasts at least its modelled time × time_scale in real time
    (pacing: the real order then follows the model's while the stand-ins
    keep up; a step whose real work took longer is an overrun, counted, and
    no part of the simulated clock)."""

    def __init__(self, st, cfg):
        self.st, self.cfg, self.k = st, cfg, cfg["time_scale"]
        self.temps = set()
        self.wrote = False  # a permanent table or the catalog: a full commit
        self.copied_mb = 0.0
        self.kind = None
        self.copy_keys = []
        self.wlm = self.copy_slot = False
        self.v0 = self.v = st.vsubmit if st.vsubmit is not None else VCLOCK.hwm
        # For the Gate: waiting for a resource; since when in a real step
        # (None while pacing).
        self.blocked, self.real_since = False, time.time()
        self.explicit = {}
        self.acquired = {}
        self.i, self.committed = 0, False
        self.needs, self.will_commit = self.plan(st.sqls)
        GATE.enter(self)

    @staticmethod
    def plan(sqls):
        """Per statement, the permanent tables it may lock, write or read,
        and whether the transaction will pay a full commit, for the Gate."""
        temps, out, commits = set(), [], False
        for sql in sqls:
            kind, names = classify(sql)
            if kind == "create_temp":
                temps.update(names)
                out.append(set())
                continue
            if kind == "read":
                names = read_tables(sql)
            elif kind == "copy" and names and names[0] in temps:
                names = []  # its final tables are written by a later INSERT
            names = {n for n in names if n not in temps and not n.startswith("#") and not n.startswith("pg_temp")}
            commits = commits or kind == "ddl" or (kind in ("write", "copy") and bool(names))
            out.append(names)
        return out, commits

    def may_take(self, resource, other):
        """Whether this transaction may still take `resource` before `other`
        releases what it holds."""
        later = set()
        for n in self.needs[self.i:]:
            if n:
                later |= n
        if later & other.st.sim_locks:
            return False  # it waits for other first
        if resource[0] == "table":
            return resource[1] in later and resource[1] not in self.st.sim_locks
        if resource[0] == "commit":
            return self.will_commit and not self.committed
        return True

    def pause(self, t0, sim_s, kind, cancellable=True):
        """Pacing: sleeps until sim_s × time_scale after t0 (the real work
        done since t0 counts in it); real time beyond it is an overrun."""
        budget = sim_s * self.k
        spent = time.time() - t0
        if spent < budget:
            self.real_since = None
            try:
                if cancellable:
                    if self.st.cancel_event.wait(budget - spent):
                        raise Aborted()
                else:
                    time.sleep(budget - spent)
            finally:
                self.real_since = time.time()
        elif sim_s > 0:
            STATS.overrun(kind, (spent - budget) / self.k)

    def charge(self, kind, sim_s):
        """The virtual clock advances by a step's modelled cost."""
        self.v += sim_s
        STATS.spent(kind, sim_s)
        GATE.moved()

    def wait_until(self, at, kind):
        """The virtual clock waits for a resource free at `at`: simulated
        seconds waited."""
        waited = max(at - self.v, 0.0)
        if waited:
            self.v = at
            STATS.spent(kind, waited, waited=True)
            GATE.moved()
        return waited

    def blocking(self, resource, wait, *args):
        """A real wait for a resource (after this transaction's turn): the
        Gate does not wait for it meanwhile."""
        if self.cfg["virtual_order"]:
            GATE.turn(self, resource)
        self.blocked = True
        GATE.moved()
        try:
            return wait(*args)
        finally:
            self.blocked = False
            self.real_since = time.time()
            GATE.moved()

    def begin(self, submitted):
        """The Data API's part (session, connection: the PostgreSQL connect
        counts in it), then a WLM slot."""
        self.pause(submitted, self.cfg["call_s"], "call_s")
        self.charge("call_s", self.cfg["call_s"])
        self.vstart = self.v
        cap = self.cfg["wlm_slots"]
        if cap and self.blocking(("slot", "wlm"), WLM.acquire, cap, self.st) is not None:
            self.wlm = True
            self.wait_until(VCLOCK.slot_take("wlm", cap, self.v), "wlm_s")

    def is_temp(self, name):
        return name in self.temps or name.startswith("#") or name.startswith("pg_temp")

    def lock(self, names, explicit=False):
        for name in names:
            if name in self.st.sim_locks:
                if explicit and name not in self.explicit:
                    TABLE_LOCKS.acquire(self.st, name, 0, explicit=True)
                    self.explicit[name] = self.v
                continue
            self.blocking(("table", name), TABLE_LOCKS.acquire, self.st, name, self.cfg["lock_timeout_s"] * self.k,
                          explicit)
            waited = self.wait_until(VCLOCK.table_free(name), "table_lock_s")
            if waited:
                STATS.table(name, lock_waits=1, lock_wait_s=waited)
            self.acquired[name] = self.v
            if explicit:
                self.explicit[name] = self.v

    def read(self, sql):
        """A read of a table another transaction holds an explicit LOCK of
        waits for its release, in real time and in virtual time (if this
        read's virtual time falls within that LOCK's)."""
        for name in read_tables(sql):
            if name in self.st.sim_locks or self.is_temp(name):
                continue
            if VCLOCK.locked_span(name) is None and name not in TABLE_LOCKS.explicit:
                continue
            self.blocking(("table", name), TABLE_LOCKS.wait_readable, self.st, name,
                          self.cfg["lock_timeout_s"] * self.k)
            span = VCLOCK.locked_span(name)
            if span is not None and span[0] <= self.v < span[1]:
                waited = self.wait_until(span[1], "table_lock_s")
                STATS.table(name, read_waits=1, lock_wait_s=waited)

    def final_tables(self, i, stage):
        """The permanent tables later statements of the batch fill from this
        COPY's staging table (an INSERT with a top-level FROM stage)."""
        out = []
        for later in self.st.sqls[i + 1:]:
            kind, names = classify(later)
            if kind == "write" and first_word(later) == "INSERT" and names and not self.is_temp(names[0]) \
                    and stage in top_level_from(later) and names[0] not in out:
                out.append(names[0])
        return out

    def before(self, i, sql):
        kind, names = classify(sql)
        self.kind, self.i = kind, i
        if kind == "create_temp":
            self.temps.update(names)
        elif kind == "lock":
            self.lock([n for n in names if not self.is_temp(n)], explicit=True)
        elif kind == "read":
            self.read(sql)
        elif kind == "copy":
            target = names[0] if names else ""
            mode = self.cfg["copy_lock"]
            if target and not self.is_temp(target):
                self.wrote = True
                self.copy_keys = [target] if mode != "none" else []
            else:
                self.copy_keys = self.final_tables(i, target) if mode == "final" else []
            if self.cfg["copy_serial_fraction"] >= 1:
                self.lock(self.copy_keys)
            cap = self.cfg["copy_slots"]
            if cap and self.blocking(("slot", "copy"), COPY_SLOTS.acquire, cap, self.st) is not None:
                self.copy_slot = True
                self.wait_until(VCLOCK.slot_take("copy", cap, self.v), "copy_slot_s")
        elif kind in ("write", "ddl"):
            targets = [n for n in names if not self.is_temp(n)]
            if names and not targets:
                return  # only a TEMP table: no full commit
            self.wrote = True
            if self.cfg["write_locks"]:
                self.lock(targets)

    def after(self, t0):
        c = self.cfg
        if self.kind != "copy":
            self.pause(t0, c["statement_s"], "statement_s")
            self.charge("statement_s", c["statement_s"])
            return
        compressed, raw = self.st.copy_sizes
        cost = c["copy_s"] + c["copy_per_mb_s"] * raw / MB + c["copy_per_compressed_mb_s"] * compressed / MB
        self.copied_mb += raw / MB
        f = c["copy_serial_fraction"]
        try:
            if f >= 1:
                self.pause(t0, cost, "copy_s")
                self.charge("copy_s", cost)
            else:
                # Snapshot isolation: the part before writing runs alongside
                # other COPYs into the table, the writing one at a time.
                self.pause(t0, cost * (1 - f), "copy_s")
                self.charge("copy_s", cost * (1 - f))
                self.lock(self.copy_keys)
                self.pause(time.time(), cost * f, "copy_s")
                self.charge("copy_s", cost * f)
        finally:
            if self.copy_slot:
                self.copy_slot = False
                VCLOCK.slot_give("copy", self.v)
                COPY_SLOTS.release()
        key = self.copy_keys[0] if self.copy_keys else "(temp, not inserted)"
        STATS.table(key, copies=1, copy_bytes=compressed)

    def commit(self, conn):
        """A full commit, one at a time cluster-wide, if the transaction wrote
        a permanent table or the catalog; else a plain one."""
        if not self.wrote:
            conn.commit()
            return
        cost = self.cfg["commit_s"] + self.cfg["commit_per_mb_s"] * self.copied_mb
        ahead = self.blocking(("commit",), COMMITS.enter, self.st)
        try:
            start, end = VCLOCK.commit(self.v, cost)
            STATS.queued(ahead, start - self.v)
            self.v = start
            t0 = time.time()
            conn.commit()
            self.pause(t0, cost, "commit_s", cancellable=False)
            self.charge("commit_s", cost)
        finally:
            self.committed = True
            COMMITS.leave(self.st)
        STATS.add("charged_commits")

    def finish(self):
        """The transaction's end in virtual time (before its status says so:
        the client's clock reads it when it sees the end)."""
        self.st.vfinish = self.v
        VCLOCK.span(getattr(self, "vstart", self.v0), self.v)
        if self.st.client is not None:
            VCLOCK.ended(self.st.client, self.v)
        if TRACE:
            with TRACE_LOCK, open(TRACE, "a") as f:
                f.write(json.dumps({"client": self.st.client.n if self.st.client else None, "submit": self.v0,
                                    "end": self.v, "real_end": time.time(), "sql": self.st.sqls[0][:60],
                                    "n": len(self.st.sqls)}) + "\n")

    def end(self):
        """Rollback or commit done: every lock and slot goes (the virtual
        free times first, so that the next holder reads them)."""
        VCLOCK.release_tables(list(self.st.sim_locks), self.v, self.explicit)
        for name, at in self.acquired.items():
            STATS.table(name, held_s=self.v - at)
        TABLE_LOCKS.release_all(self.st)
        GATE.leave(self)
        if self.copy_slot:
            self.copy_slot = False
            VCLOCK.slot_give("copy", self.v)
            COPY_SLOTS.release()
        if self.wlm:
            self.wlm = False
            VCLOCK.slot_give("wlm", self.v)
            WLM.release()


def reset_stats():
    """The counters, and the virtual clock with them (virtual time 0 again,
    no clients, every resource free), and the quotas' buckets."""
    STATS.reset()
    VCLOCK.reset()
    with QUOTAS.lock:
        QUOTAS.buckets.clear()


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


S3 = []
S3_LOCK = threading.Lock()


def s3_get(uri):
    bucket, key = uri[len("s3://"):].split("/", 1)
    # One client for the process (making one takes ~40 ms; clients are
    # thread-safe, making them is not).
    with S3_LOCK:
        if not S3:
            S3.append(boto3.client("s3", config=botocore.config.Config(max_pool_connections=64)))
    return S3[0].get_object(Bucket=bucket, Key=key)["Body"].read()


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
    paths = ["$"] if noshred else jsonpaths(paths_m.group(1))
    if len(paths) != len(names):
        raise psycopg.errors.InvalidParameterValue(
            f"Number of jsonpaths and the number of columns should match. JSONPath size: {len(paths)}, Number of columns in table or column list: {len(names)}")
    parts = [parse_jsonpath(p) for p in paths]
    raw = s3_get(src)
    stored = len(raw)
    if re.search(r"\bGZIP\b", opts, re.I):
        raw = gzip.decompress(raw)
    elif re.search(r"\bZSTD\b", opts, re.I):
        import zstandard
        raw = zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    session.copy_sizes = (stored, len(raw))
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


JSONPATHS = {}


def jsonpaths(uri):
    """The jsonpaths file's paths; while the cost model is on, read once a URI
    (the loader names them by a hash of their content), so that the moto
    read does not count in the simulated COPY."""
    if COST.current() is None:
        return json.loads(s3_get(uri))["jsonpaths"]
    if uri not in JSONPATHS:
        JSONPATHS[uri] = json.loads(s3_get(uri))["jsonpaths"]
    return JSONPATHS[uri]


class Spares:
    """Fresh PostgreSQL connections opened ahead, for the cost model: each
    transaction still gets a new backend (its own session and pid), without
    waiting for the connect, which would count in its simulated time."""

    SIZE = 8

    def __init__(self):
        self.lock = threading.Lock()
        self.idle = []
        self.wake = threading.Event()
        self.thread = None

    def get(self):
        with self.lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self.fill, daemon=True)
                self.thread.start()
            conn = self.idle.pop() if self.idle else None
        self.wake.set()
        return conn if conn is not None else psycopg.connect(ARGS.database_url)

    def fill(self):
        while True:
            self.wake.wait()
            self.wake.clear()
            while COST.current() is not None and len(self.idle) < self.SIZE:
                try:
                    conn = psycopg.connect(ARGS.database_url)
                except psycopg.Error:
                    time.sleep(1)
                    break
                with self.lock:
                    self.idle.append(conn)


SPARES = Spares()


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
        # The last COPY's object, as stored and uncompressed (bytes).
        self.copy_sizes = (0, 0)
        # Cancellation wakes the cost model's sleeps and waits; `done` wakes
        # long polls (WaitTimeSeconds).
        self.cancel_event = threading.Event()
        self.done = threading.Event()
        self.finished_at, self.observed = None, False
        self.sim_locks = set()
        # The virtual clock (cost model on): the client that submitted it,
        # the virtual times it was submitted and ended, its Sim.
        self.client = self.vsubmit = self.vfinish = self.sim = None

    def set(self, status, error=None):
        if status in ("FINISHED", "FAILED", "ABORTED") and self.sim is not None and self.vfinish is None:
            self.sim.finish()
        self.status, self.updated = status, now()
        if error is not None:
            self.error = error
        if status in ("FINISHED", "FAILED", "ABORTED"):
            self.finished_at = time.time()
            self.done.set()

    def run(self):
        # The cost model as it is when the transaction starts (None: off).
        cfg = COST.current()
        sim = self.sim = Sim(self, cfg) if cfg else None
        STATS.begin()
        if sim is None:
            self.set("STARTED")
        started = time.time()
        wrote = False
        try:
            with (SPARES.get() if sim is not None else psycopg.connect(ARGS.database_url)) as conn:
                self.pid = conn.info.backend_pid
                self.database = conn.info.dbname
                if sim is not None:
                    sim.begin(started)
                    self.set("STARTED")
                with conn.cursor() as cur:
                    for i, sql in enumerate(self.sqls):
                        sub = self.subs[i]
                        sub["Status"], sub["UpdatedAt"] = "STARTED", now()
                        sub["RedshiftQueryId"] = next(QUERY_IDS)
                        STATS.add("statements")
                        if RULES["abort_matching"] and RULES["abort_matching"] in sql:
                            raise Aborted()
                        if self.cancelled:
                            raise Aborted()
                        try:
                            if RULES["fail_matching"] and RULES["fail_matching"] in sql:
                                with LOCK:
                                    left = RULES["fail_times"]
                                    fail = left is None or left > 0
                                    if left is not None and left > 0:
                                        RULES["fail_times"] = left - 1
                                if fail:
                                    raise psycopg.errors.InternalError(RULES["fail_message"] or "test server: failing as asked")
                            if sim is not None:
                                sim.before(i, sql)
                            t0 = time.time()
                            if re.match(r"^\s*COPY\b", sql, re.I):
                                rows = run_copy(cur, translate(sql, self), sub["RedshiftQueryId"], self)
                                sub["ResultRows"] = rows
                                STATS.add("copies")
                                STATS.add("copy_rows", rows)
                                STATS.add("copy_bytes", self.copy_sizes[0])
                                STATS.add("copy_bytes_uncompressed", self.copy_sizes[1])
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
                            if sim is not None:
                                sim.after(t0)
                        except psycopg.errors.QueryCanceled:
                            raise Aborted()
                        except psycopg.Error as e:
                            sub["Status"], sub["Error"] = "FAILED", f"ERROR: {e.diag.message_primary if e.diag and e.diag.message_primary else e}"
                            raise
                        wrote = wrote or first_word(sql) not in READ_VERBS
                        sub["Status"], sub["UpdatedAt"] = "FINISHED", now()
                        sub["Duration"] = int((time.time() - started) * 1e9)
                    delay = RULES["delay_ms"] / 1000 - (time.time() - started)
                    slow = RULES["delay_matching"] is None or any(RULES["delay_matching"] in q for q in self.sqls)
                    if delay > 0 and slow:
                        time.sleep(delay)
                    if self.cancelled:
                        raise Aborted()
                if sim is not None:
                    sim.commit(conn)
                else:
                    conn.commit()
                STATS.add("transactions")
                if wrote:
                    STATS.add("commits")
            self.set("FINISHED")
        except Aborted:
            STATS.add("aborted")
            for s in self.subs:
                if s["Status"] in ("SUBMITTED", "STARTED", "FINISHED"):
                    s["Status"] = "ABORTED"
            self.set("ABORTED", "Query (statement) was aborted")
        except psycopg.Error as e:
            STATS.add("failed")
            msg = e.diag.message_primary if e.diag and e.diag.message_primary else str(e)
            for s in self.subs:
                if s["Status"] in ("SUBMITTED", "STARTED"):
                    s["Status"] = "ABORTED"
            self.set("FAILED", f"ERROR: {msg}")
        except Exception as e:  # noqa: BLE001 - reported as the statement's error
            STATS.add("failed")
            self.set("FAILED", f"ERROR: test server: {e!r}")
        finally:
            # Locks go after the commit (or the rollback): as Redshift, all at once.
            if sim is not None:
                sim.end()
            STATS.end()

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


def wait_seconds(req):
    """WaitTimeSeconds (long polling, 0-30), as real seconds: scaled while
    the cost model is on."""
    w = req.get("WaitTimeSeconds")
    if w is None:
        return 0
    if isinstance(w, bool) or not isinstance(w, int) or not 0 <= w <= 30:
        raise ApiError("ValidationException", "WaitTimeSeconds must be between 0 and 30")
    cfg = COST.current()
    return w * cfg["time_scale"] if cfg else w


def long_poll(st, wait):
    """Waits up to `wait` real seconds for the statement to end. Seeing the
    end moves its client's virtual clock past it; a poll that does not see it
    costs no virtual time (polling is modelled as ideal long polling)."""
    if wait:
        st.done.wait(wait)
    if st.done.is_set() and not st.observed:
        st.observed = True
        STATS.poll_lag(time.time() - st.finished_at)
        cfg = COST.current()
        if cfg is not None and st.client is not None and st.vfinish is not None:
            VCLOCK.observed(st.client, st.vfinish, cfg["api_latency_s"])


def client_call(st):
    """A call about a statement (its result, a cancel) costs its client an
    api_latency_s of virtual time."""
    cfg = COST.current()
    if cfg is not None and st.client is not None:
        VCLOCK.advance(st.client, st.client.clock + cfg["api_latency_s"])


def op_execute(req, batch):
    target_of(req)
    if not req.get("Database"):
        raise ApiError("ValidationException", "Database is required")
    wait = wait_seconds(req)
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
    cfg = COST.current()
    if cfg is not None:
        st.client, st.vsubmit = VCLOCK.submit(sqls, cfg["api_latency_s"])
        GATE.moved()
    STATS.add("batches" if batch else "executes")
    threading.Thread(target=st.run, daemon=True).start()
    out = {"Id": st.id, "CreatedAt": st.created, "Database": req["Database"],
           "ClusterIdentifier": req.get("ClusterIdentifier"), "WorkgroupName": req.get("WorkgroupName")}
    if "WaitTimeSeconds" in req:
        long_poll(st, wait)
        out.update({"Status": st.status, "RedshiftPid": st.pid or 0, "HasResultSet": st.describe()["HasResultSet"]})
    return out


def statement(req):
    sid = req.get("Id", "")
    base = sid.split(":")[0]
    st = STATEMENTS.get(base)
    if st is None:
        raise ApiError("ResourceNotFoundException", f"Query does not exist: {sid}")
    return st, sid


def op_describe(req):
    st, _ = statement(req)
    long_poll(st, wait_seconds(req))
    return st.describe()


def op_result(req):
    st, sid = statement(req)
    client_call(st)
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
    client_call(st)
    if st.status not in ("SUBMITTED", "PICKED", "STARTED"):
        raise ApiError("ValidationException", f"Could not cancel a query that is already in {st.status} state")
    st.cancelled = True
    st.cancel_event.set()
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
    # Headers and body are two writes: without TCP_NODELAY, Nagle's
    # algorithm and the client's delayed ACK hold every reply ~40 ms.
    disable_nagle_algorithm = True

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
        if self.path == "/_test/stats":
            return self.reply(200, STATS.snapshot())
        self.reply(200, {"ok": True, "statements": len(STATEMENTS)})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/_test/rules":
            rules = json.loads(body or b"{}")
            # The cost model stays as it is unless named ({"cost_model":
            # null}: the defaults, off).
            if "cost_model" in rules:
                try:
                    COST.configure(rules.pop("cost_model") or {})
                except ValueError as e:
                    return self.reply(400, {"__type": "ValidationException", "message": str(e)})
                VCLOCK.reset()
            reset = rules.pop("reset_stats", False)
            RULES.update(RULE_DEFAULTS)
            RULES.update(rules)
            if reset:
                reset_stats()
            return self.reply(200, {**RULES, "cost_model": COST.cfg})
        if self.path == "/_test/stats/reset":
            reset_stats()
            return self.reply(200, {"reset": True})
        target = self.headers.get("X-Amz-Target", "")
        op = target.split(".", 1)[-1]
        if op not in OPS:
            return self.reply(400, {"__type": "UnknownOperationException", "message": f"unsupported: {target}"})
        STATS.call(op)
        cfg = COST.current()
        if cfg is not None:
            rate = cfg["quotas"].get(op)
            if rate and not QUOTAS.take(op, rate, VCLOCK.hwm):
                STATS.call(op, "over_quota")
                if cfg["throttle"]:
                    STATS.call(op, "throttled")
                    return self.reply(400, {"__type": "ThrottlingException", "message": "Rate exceeded"})
            if cfg["api_latency_s"]:
                time.sleep(cfg["api_latency_s"] * cfg["time_scale"])
                STATS.spent("api_s", cfg["api_latency_s"])
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
    p.add_argument("--cost-model", action="store_true",
                   help="simulate Redshift's costs (see the docstring); off by default")
    p.add_argument("--time-scale", type=float, help="real seconds a simulated second (default 0.01)")
    p.add_argument("--cost-model-json", help="overrides of the cost model's defaults, a JSON object")
    ARGS = p.parse_args()
    overrides = json.loads(ARGS.cost_model_json) if ARGS.cost_model_json else {}
    if ARGS.cost_model:
        overrides["enabled"] = True
    if ARGS.time_scale is not None:
        overrides["time_scale"] = ARGS.time_scale
    try:
        COST.configure(overrides)
    except ValueError as e:
        p.error(str(e))
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
    model = f" (cost model on, time scale {COST.cfg['time_scale']})" if COST.cfg["enabled"] else ""
    print(f"redshift data api test server on http://127.0.0.1:{ARGS.port}{model}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
