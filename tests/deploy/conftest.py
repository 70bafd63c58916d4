"""A moto server of the tests' own (a fresh account: no state shared with
the Rust tests on scripts/test's server), and boto3 clients on it.

It fails, never skips, when moto cannot start."""

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "logrouter.yaml"
REGION = "us-east-1"


def _moto_server() -> str:
    if os.environ.get("TEST_MOTO_SERVER"):
        return os.environ["TEST_MOTO_SERVER"]
    return str(Path(sys.executable).parent / "moto_server")


@pytest.fixture(scope="session")
def moto_url():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    log = tempfile.NamedTemporaryFile(prefix="moto-deploy-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [_moto_server(), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"moto server did not start: {Path(log.name).read_text()}")
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def aws(moto_url):
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION=REGION
    )
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    session = boto3.session.Session(region_name=REGION)

    class Clients:
        def __getattr__(self, name):
            client = session.client(name, endpoint_url=moto_url)
            setattr(self, name, client)
            return client

    return Clients()
