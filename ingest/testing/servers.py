"""Embedded servers on loopback for the demo and the integration tests: moto's S3/SQS server
(its own process) and osmem-server (an in-memory OpenSearch-compatible server)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

__all__ = ["MotoServer", "OsmemHandle", "free_port", "start_osmem", "stop_process"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class MotoServer:
    """moto's server in its own process on 127.0.0.1."""

    process: subprocess.Popen[bytes]
    url: str

    @classmethod
    def start(cls, *, timeout: float = 30.0) -> MotoServer:
        port = free_port()
        exe = shutil.which("moto_server")
        argv = [exe] if exe else [sys.executable, "-m", "moto.server"]
        proc = subprocess.Popen(
            [*argv, "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"moto server exited with status {proc.returncode}")
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):  # noqa: S310 (loopback)  # nosec B310
                    return cls(proc, url)
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        proc.kill()
        raise RuntimeError(f"moto server did not answer on {url} within {timeout} s")

    def reset(self) -> None:
        """Forget every bucket, object and queue."""
        req = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")  # noqa: S310
        with urllib.request.urlopen(req, timeout=10):  # noqa: S310 (loopback)  # nosec B310
            pass

    def stop(self) -> None:
        stop_process(self.process)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate a server process started here, killing it if it lingers."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class OsmemHandle:
    server: Any

    @property
    def url(self) -> str:
        return str(self.server.url)

    def stop(self) -> None:
        self.server.close()


def start_osmem() -> OsmemHandle:
    """osmem-server on a free loopback port, Japanese analysis off."""
    from osmem_server import OsmemServer

    return OsmemHandle(OsmemServer.start(japanese=False, addr="127.0.0.1:0"))
