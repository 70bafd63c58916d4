"""The CloudFront facts both CloudFront peers of bench/router share: which
fields CloudFront percent-encodes, the one kept as written too, and the key
a field name becomes (as the router's normalisation does for these names:
cs(User-Agent) -> cs_user_agent, x-edge-location -> x_edge_location)."""

import gzip
import re

DECODED = {"cs-uri-stem", "cs-uri-query", "cs(Referer)", "cs(User-Agent)", "cs(Cookie)"}
KEEP_RAW = {"cs-uri-query"}


def timestamp(date, time):
    """The router's `timestamp` of a record: `{date}T{time}Z` (CloudFront
    writes both in UTC), None when either is missing."""
    return None if date is None or time is None else f"{date}T{time}Z"


def key(name):
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def fields_of(path):
    """The field names of the first #Fields: header of a gzipped log."""
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("#Fields:"):
                return line[len("#Fields:"):].split()
            if not line.startswith("#"):
                break
    raise SystemExit(f"{path}: no #Fields: header before the first record")
