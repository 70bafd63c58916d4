"""A Lambda Runtime API of bench/lambda's own (stdlib only).

Hands out one invocation, an SQS event naming s3://BUCKET/KEY, with a real
deadline (15 minutes), then writes to TIMES the epoch seconds of the
function's first `next` request, of the hand-out and of the answer, and the
answer's body; then exits.

    python3 bench/lambda_runtime.py PORT TIMES BUCKET KEY
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, times_path, bucket, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
times = {}
handed_out = threading.Event()
done = threading.Event()

body = json.dumps({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                                "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}]})
event = json.dumps({"Records": [{"messageId": "bench-1", "receiptHandle": "r", "body": body,
                                 "attributes": {}, "messageAttributes": {}, "md5OfBody": "",
                                 "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:1:q",
                                 "awsRegion": "us-east-1"}]}).encode()


class Api(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.endswith("/runtime/invocation/next"):
            times.setdefault("first_next", time.time())
            if handed_out.is_set():
                done.wait()
                time.sleep(3600)
            handed_out.set()
            deadline = int((time.time() + 900) * 1000)
            times["handed"] = time.time()
            self.send_response(200)
            self.send_header("Lambda-Runtime-Aws-Request-Id", "bench-invocation")
            self.send_header("Lambda-Runtime-Deadline-Ms", str(deadline))
            self.send_header("Content-Length", str(len(event)))
            self.end_headers()
            self.wfile.write(event)
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        answer = self.rfile.read(length).decode()
        if "/invocation/" in self.path:
            times["answered"] = time.time()
            times["answer"] = answer
            done.set()
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()


server = ThreadingHTTPServer(("127.0.0.1", port), Api)
threading.Thread(target=server.serve_forever, daemon=True).start()
done.wait()
with open(times_path, "w") as f:
    for k in ("first_next", "handed", "answered"):
        f.write(f"{k} {times[k]}\n")
    f.write(f"answer {times['answer']}\n")
server.shutdown()
