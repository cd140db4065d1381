"""Fixtures: a real `tokengate serve` (the binary named by TOKENGATE_BIN) per test module,
each with its own data dir, plus boto3 clients pointed at it.

tests/interop.rs runs the suite once per store engine. On PostgreSQL it sets
TOKENGATE_INTEROP_STORE_URL and TOKENGATE_INTEROP_SCHEMA_PREFIX: each Service then gets the
URL and a schema of its own (the prefix and a counter), which tests/interop.rs drops after
the run. Unset, every Service uses SQLite in its data dir."""

import itertools
import json
import os
import subprocess
import tempfile
import threading

import boto3
import pytest
from botocore.config import Config

REGION = "us-east-1"

# The store engine of this run (tests/interop.rs): a PostgreSQL URL, or None for SQLite.
STORE_URL = os.environ.get("TOKENGATE_INTEROP_STORE_URL") or None
_SCHEMA_PREFIX = os.environ.get("TOKENGATE_INTEROP_SCHEMA_PREFIX", "tg_interop_")
_schema_numbers = itertools.count()


class Service:
    def __init__(self, env=None):
        self.dir = tempfile.TemporaryDirectory()
        self.data = os.path.join(self.dir.name, "data")
        full_env = dict(os.environ)
        full_env.update({"TOKENGATE_LOG_FORMAT": "json"})
        # The PostgreSQL schema of this service (None on SQLite).
        self.schema = None
        if STORE_URL:
            self.schema = f"{_SCHEMA_PREFIX}{next(_schema_numbers)}"
            full_env.update({"TOKENGATE_STORE_URL": STORE_URL, "TOKENGATE_STORE_SCHEMA": self.schema})
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

    def stored_bytes(self):
        """What the store holds, as bytes: on SQLite the database files of the data dir (the
        WAL included), on PostgreSQL every row of the service's schema (bytea as stored,
        other columns as text)."""
        if self.schema is None:
            raw = b""
            for name in ("tokengate.db", "tokengate.db-wal", "tokengate.db-shm"):
                path = os.path.join(self.data, name)
                if os.path.exists(path):
                    with open(path, "rb") as f:
                        raw += f.read()
            return raw
        return pg_rows(STORE_URL, self.schema)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.dir.cleanup()


def pg_rows(url, schema):
    """Every row of every table of `schema` at the PostgreSQL `url`, as bytes."""
    import urllib.parse

    import pg8000.native

    u = urllib.parse.urlparse(url)
    conn = pg8000.native.Connection(
        user=urllib.parse.unquote(u.username or "postgres"),
        password=urllib.parse.unquote(u.password) if u.password else None,
        host=u.hostname or "127.0.0.1",
        port=u.port or 5432,
        database=u.path.lstrip("/") or "postgres",
    )
    try:
        columns = conn.run(
            "SELECT c.table_name::text, c.column_name::text, c.data_type::text "
            "FROM information_schema.columns c JOIN information_schema.tables t "
            "ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
            "WHERE c.table_schema = :schema AND t.table_type = 'BASE TABLE' "
            "ORDER BY c.table_name, c.ordinal_position",
            schema=schema,
        )
        tables = {}
        for table, column, kind in columns:
            if kind == "bytea":
                expr = f'coalesce("{column}", \'\'::bytea)'
            else:
                expr = f'convert_to(coalesce("{column}"::text, \'\'), \'UTF8\')'
            tables.setdefault(table, []).append(expr)
        raw = b""
        for table, exprs in tables.items():
            joined = " || '\\x00'::bytea || ".join(exprs)
            for (row,) in conn.run(f'SELECT {joined} FROM {schema}."{table}"'):
                raw += bytes(row) + b"\n"
        return raw
    finally:
        conn.close()


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
