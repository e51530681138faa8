"""A real S3 API on 127.0.0.1: moto's server, in a process of its own, for remote task logs.

Airflow processes of other OS processes (a task pod's supervisor, the api-server) reach it over HTTP
like any S3-compatible store, through a connection whose extra names the endpoint
(``{"endpoint_url": ...}``). It runs as a subprocess rather than moto's ThreadedMotoServer: no moto state
or GIL shared with the test process, and it is stopped by its PID (its own process group).

moto accepts any credentials; the fixed dummy keys below are what clients sign with.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.postgres_server import free_port

ACCESS_KEY_ID = "moto-test-access-key"
SECRET_ACCESS_KEY = "moto-test-secret-access-key"  # not a secret: moto accepts anything
REGION = "us-east-1"


class MotoS3:
    """``MotoS3.start("bucket")`` -> a running server with that bucket; ``stop()`` ends it."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.log = log

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, *buckets: str, timeout: float = 60) -> MotoS3:
        # the port is chosen before the server binds it: on the rare collision, try another
        for _ in range(5):
            port = free_port()
            log = Path(tempfile.mkstemp(prefix="moto-s3-", suffix=".log")[1])
            with log.open("wb") as output:
                process = subprocess.Popen(
                    [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "MOTO_PORT": str(port)},
                    start_new_session=True,
                )
            server = cls(process, port, log)
            if server._wait_ready(timeout):
                for bucket in buckets:
                    server.client().create_bucket(Bucket=bucket)
                return server
            server.stop()
        raise RuntimeError(f"moto's S3 server did not start: {log.read_text()[-2000:]}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False  # e.g. the port was taken meanwhile
            try:
                self.client().list_buckets()
                return True
            except Exception:
                time.sleep(0.2)
        return False

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
            region_name=REGION,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )

    def connection_json(self) -> str:
        """An Airflow AWS connection (JSON form, as AIRFLOW_CONN_<ID> takes it) for this server."""
        return json.dumps(
            {
                "conn_type": "aws",
                "login": ACCESS_KEY_ID,
                "password": SECRET_ACCESS_KEY,
                "extra": {
                    "endpoint_url": self.endpoint_url,
                    "region_name": REGION,
                    "config_kwargs": {"s3": {"addressing_style": "path"}},
                },
            }
        )

    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        keys: list[str] = []
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [item["Key"] for item in page.get("Contents", [])]
        return sorted(keys)

    def get(self, bucket: str, key: str) -> str:
        return self.client().get_object(Bucket=bucket, Key=key)["Body"].read().decode()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.log.unlink(missing_ok=True)
