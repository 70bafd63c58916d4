#!/usr/bin/env python3
"""A fault-injecting TCP proxy for the fault soak (issue #13). Stdlib only.

Listens on one localhost port per upstream (moto, PostgreSQL, the Redshift
Data API test server...) and forwards bytes both ways, unchanged. While
faults are on, it injects, from a seeded random generator:

- reset_response: part of a chunk of the upstream's answer is forwarded,
  then both connections are reset (RST, SO_LINGER 0): a reply cut off mid-way;
- reset_request: the same on the client's side, mid-request (an upload, a
  COPY, a statement cut off);
- delay: a chunk is held back for a while (up to --max-delay seconds);
- outage: every so often (exponential, mean --outage-every seconds, per
  upstream) the listener is closed, so new connections are refused, and its
  open connections are reset (counted as cut_by_outage), for up to
  --outage-secs; then it listens again on the same port.

Bytes are never altered (TCP would not deliver altered bytes either): what
the services see is what real networks and restarting servers do to them.

Each connection draws from a generator of its own, seeded with
(seed, upstream, connection number), and outages from one per upstream, so
a seed gives the same faults to the same connections; the interleaving of
connections is still the scheduler's. Every fault is counted.

  fault_proxy.py --seed 7 --upstream moto=127.0.0.1:5000 \
      --upstream pg=127.0.0.1:5432,reset_response=0.01,outage_every=15

(an upstream's own rates override the command line's, which apply to the
others: a PostgreSQL session is many small round trips, an S3 request few
large ones, so one per-chunk rate does not fit both)

prints one JSON line on stdout once listening:
  {"control": PORT, "ports": {"moto": PORT, "pg": PORT}}
and then answers HTTP on the control port:
  GET  /stats        the counts, per upstream and in total (JSON)
  POST /faults/on    start injecting faults (the default with --faults-on)
  POST /faults/off   stop: outages end at once, connections pass untouched
"""

import argparse
import asyncio
import json
import random
import socket
import struct
import sys
import time

KINDS = (
    "reset_response",
    "reset_request",
    "delay",
    "outage",
    "cut_by_outage",
)


class Conn:
    def __init__(self, client_w):
        self.client_w = client_w
        self.up_w = None
        self.dead = False

    def reset(self):
        """Both sides get a TCP reset, at once."""
        if self.dead:
            return
        self.dead = True
        for w in (self.client_w, self.up_w):
            if w is None:
                continue
            sock = w.get_extra_info("socket")
            try:
                if sock is not None:
                    sock.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
            except OSError:
                pass
            w.transport.abort()


RATES = ("reset_response", "reset_request", "delay", "max_delay", "outage_every", "outage_secs")


class Upstream:
    def __init__(self, proxy, name, host, port, rates):
        self.proxy = proxy
        # The fault rates of this upstream: the command line's, or its own.
        self.rates = argparse.Namespace(**{k: getattr(proxy.args, k) for k in RATES})
        for k, v in rates.items():
            if k not in RATES:
                raise SystemExit(f"--upstream {name}: unknown rate {k!r} (one of {', '.join(RATES)})")
            setattr(self.rates, k, float(v))
        self.name = name
        self.host, self.port = host, port
        self.listen_port = 0
        self.server = None
        self.conns = set()
        self.n_conns = 0
        self.counts = {k: 0 for k in KINDS}
        self.counts["connections"] = 0
        self.counts["upstream_refused"] = 0
        self.counts["outage_secs"] = 0.0
        self.outage_end = None
        self.outage_started = None
        self.rng = random.Random(f"{proxy.args.seed}:{name}:outages")

    async def listen(self):
        self.server = await asyncio.start_server(
            self.handle, "127.0.0.1", self.listen_port, reuse_address=True
        )
        self.listen_port = self.server.sockets[0].getsockname()[1]

    def stop_listening(self):
        if self.server is not None:
            self.server.close()
            self.server = None

    async def outages(self):
        args = self.rates
        if args.outage_every <= 0:
            return
        while True:
            await asyncio.sleep(self.rng.expovariate(1.0 / args.outage_every))
            secs = self.rng.uniform(0.3, args.outage_secs)
            if not self.proxy.faults:
                continue
            self.counts["outage"] += 1
            self.stop_listening()
            for c in list(self.conns):
                if not c.dead:
                    self.counts["cut_by_outage"] += 1
                    c.reset()
            start = self.outage_started = time.monotonic()
            self.outage_end = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self.outage_end), secs)
            except asyncio.TimeoutError:
                pass
            self.outage_end = None
            self.outage_started = None
            self.counts["outage_secs"] += time.monotonic() - start
            await self.listen()

    def end_outage(self):
        if self.outage_end is not None and not self.outage_end.done():
            self.outage_end.set_result(None)

    async def handle(self, client_r, client_w):
        self.n_conns += 1
        self.counts["connections"] += 1
        rng = random.Random(f"{self.proxy.args.seed}:{self.name}:{self.n_conns}")
        conn = Conn(client_w)
        try:
            up_r, up_w = await asyncio.open_connection(self.host, self.port)
        except OSError:
            self.counts["upstream_refused"] += 1
            client_w.transport.abort()
            return
        conn.up_w = up_w
        self.conns.add(conn)
        try:
            await asyncio.gather(
                self.pump(conn, rng, client_r, up_w, "reset_request"),
                self.pump(conn, rng, up_r, client_w, "reset_response"),
            )
        finally:
            self.conns.discard(conn)
            conn.dead = True
            for w in (client_w, up_w):
                w.close()

    async def pump(self, conn, rng, reader, writer, reset_kind):
        args = self.rates
        p_reset = args.reset_response if reset_kind == "reset_response" else args.reset_request
        try:
            while not conn.dead:
                chunk = await reader.read(65536)
                if conn.dead:
                    return
                if not chunk:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                if self.proxy.faults:
                    r = rng.random()
                    if r < p_reset:
                        cut = rng.randrange(len(chunk) + 1)
                        writer.write(chunk[:cut])
                        try:
                            await asyncio.wait_for(writer.drain(), 1)
                        except (OSError, asyncio.TimeoutError):
                            pass
                        self.counts[reset_kind] += 1
                        conn.reset()
                        return
                    if r < p_reset + args.delay:
                        self.counts["delay"] += 1
                        await asyncio.sleep(rng.uniform(0.05, args.max_delay))
                        if conn.dead:
                            return
                writer.write(chunk)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            conn.reset()


class Proxy:
    def __init__(self, args):
        self.args = args
        self.faults = args.faults_on
        self.upstreams = []
        for spec in args.upstream:
            name, _, rest = spec.partition("=")
            addr, *overrides = rest.split(",")
            host, _, port = addr.rpartition(":")
            rates = dict(o.split("=", 1) for o in overrides)
            self.upstreams.append(Upstream(self, name, host, int(port), rates))

    def stats(self):
        total = {k: 0 for k in KINDS}
        total["connections"] = 0
        total["upstream_refused"] = 0
        total["outage_secs"] = 0.0
        upstreams = {}
        for u in self.upstreams:
            counts = dict(u.counts)
            if u.outage_started is not None:
                counts["outage_secs"] += time.monotonic() - u.outage_started
            upstreams[u.name] = counts
            for k, v in counts.items():
                total[k] += v
        return {
            "seed": self.args.seed,
            "faults": self.faults,
            "total": total,
            "upstreams": upstreams,
        }

    async def control(self, reader, writer):
        try:
            line = (await reader.readline()).decode("latin-1").split()
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            method, path = (line + ["", ""])[:2]
            status, body = "200 OK", None
            if path == "/faults/on" and method == "POST":
                self.faults = True
            elif path == "/faults/off" and method == "POST":
                self.faults = False
                for u in self.upstreams:
                    u.end_outage()
            elif path != "/stats":
                status, body = "404 Not Found", {"error": f"no {method} {path}"}
            data = json.dumps(body if body is not None else self.stats()).encode()
            writer.write(
                f"HTTP/1.0 {status}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
                + data
            )
            await writer.drain()
        finally:
            writer.close()

    async def run(self):
        for u in self.upstreams:
            await u.listen()
        control = await asyncio.start_server(
            self.control, "127.0.0.1", self.args.control_port
        )
        print(
            json.dumps(
                {
                    "control": control.sockets[0].getsockname()[1],
                    "ports": {u.name: u.listen_port for u in self.upstreams},
                }
            ),
            flush=True,
        )
        await asyncio.gather(*(u.outages() for u in self.upstreams))
        await asyncio.Event().wait()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--upstream", action="append", required=True,
                   metavar="NAME=HOST:PORT[,RATE=VALUE...]",
                   help="an upstream, optionally with fault rates of its own "
                   "(e.g. pg=127.0.0.1:5432,reset_response=0.01,outage_every=15)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--control-port", type=int, default=0)
    p.add_argument("--faults-on", action="store_true", help="inject faults from the start")
    p.add_argument("--reset-response", type=float, default=0.02,
                   help="probability that a chunk of an answer is cut off by a reset")
    p.add_argument("--reset-request", type=float, default=0.01,
                   help="probability that a chunk of a request is cut off by a reset")
    p.add_argument("--delay", type=float, default=0.03,
                   help="probability that a chunk is held back")
    p.add_argument("--max-delay", type=float, default=1.0, help="seconds, at most")
    p.add_argument("--outage-every", type=float, default=8.0,
                   help="mean seconds between outages of one upstream (0: none)")
    p.add_argument("--outage-secs", type=float, default=2.0, help="longest outage, seconds")
    args = p.parse_args()
    try:
        asyncio.run(Proxy(args).run())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
