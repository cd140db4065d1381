"""Fixtures: a real `tokengate serve` (the binary named by TOKENGATE_BIN) per test module,
each with its own data dir, plus boto3 clients pointed at it."""

import json
import os
import subprocess
import tempfile
import threading

import boto3
import pytest
from botocore.config import Config

REGION = "us-east-1"


class Service:
    def __init__(self, env=None):
        self.dir = tempfile.TemporaryDirectory()
        self.data = os.path.join(self.dir.name, "data")
        full_env = dict(os.environ)
        full_env.update({"TOKENGATE_LOG_FORMAT": "json"})
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [os.environ["TOKENGATE_BIN"], "serve", "--listen", "127.0.0.1:0", "--data-dir", self.data],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=full_env,
            text=True,
        )
        self.log = []
        self.addr = None
        for line in self.proc.stderr:
            self.log.append(line)
            try:
                listen = json.loads(line).get("fields", {}).get("listen")
            except ValueError:
                continue
            if listen:
                self.addr = listen
                break
        if self.addr is None:
            raise RuntimeError("tokengate did not start:\n" + "".join(self.log))
        threading.Thread(target=self._drain, daemon=True).start()
        self.url = f"http://{self.addr}"
        with open(os.path.join(self.data, "root-credentials.json")) as f:
            self.root = json.load(f)

    def _drain(self):
        for line in self.proc.stderr:
            self.log.append(line)

    def client(self, service, key_id, secret, token=None):
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            aws_session_token=token,
            config=Config(retries={"max_attempts": 1}),
        )

    def root_client(self, service):
        return self.client(service, self.root["AccessKeyId"], self.root["SecretAccessKey"])

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.dir.cleanup()


@pytest.fixture(scope="module")
def svc():
    """A service with mfa.required = false (AWS behaviour)."""
    s = Service({"TOKENGATE_MFA_REQUIRED": "false"})
    yield s
    s.stop()


@pytest.fixture(scope="module")
def strict_svc():
    """A service with the default mfa.required = true."""
    s = Service()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def alice(svc):
    """User alice with an access key: (key id, secret)."""
    iam = svc.root_client("iam")
    iam.create_user(UserName="alice")
    key = iam.create_access_key(UserName="alice")["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]
