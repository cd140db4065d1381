"""`tokengate login` as the AWS CLI's credential_process (botocore's ProcessProvider)."""

import json
import os
import subprocess
import sys
import time

import jwt
import pyotp
import pytest

from conftest import Service

ACCOUNT = "000000000000"


@pytest.fixture(scope="module")
def logged_svc():
    """mfa.required = false, logging each answered call (`ok`, at debug level) so that the
    test can count GetSessionToken calls."""
    s = Service({
        "TOKENGATE_MFA_REQUIRED": "false",
        "TOKENGATE_LOG_LEVEL": "info,tokengate_server=debug",
    })
    yield s
    s.stop()


class AwsHome:
    """A tmp dir holding `config`, `credentials` and the XDG cache, and the AWS CLI run with
    only those (no AWS_* variable from outside, in particular no AWS_ENDPOINT_URL)."""

    def __init__(self, root):
        self.root = str(root)
        self.config = os.path.join(self.root, "config")
        self.credentials = os.path.join(self.root, "credentials")
        self.cache = os.path.join(self.root, "cache", "tokengate")

    def write(self, config, credentials):
        with open(self.config, "w") as f:
            f.write(config)
        with open(self.credentials, "w") as f:
            f.write(credentials)

    def aws(self, *args):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({
            "HOME": self.root,
            "AWS_CONFIG_FILE": self.config,
            "AWS_SHARED_CREDENTIALS_FILE": self.credentials,
            "XDG_CACHE_HOME": os.path.join(self.root, "cache"),
        })
        aws = os.path.join(os.path.dirname(sys.executable), "aws")
        return subprocess.run(
            [aws, "--output", "json", *args],
            capture_output=True, text=True, env=env, timeout=120,
        )

    def cache_files(self):
        if not os.path.isdir(self.cache):
            return []
        return sorted(os.path.join(self.cache, n) for n in os.listdir(self.cache))


def session_token_calls(svc):
    """GetSessionToken calls the service answered, from its JSON log."""
    count = 0
    for line in list(svc.log):
        try:
            fields = json.loads(line).get("fields", {})
        except ValueError:
            continue
        if fields.get("action") == "GetSessionToken":
            count += 1
    return count


def wait_for_log(svc, predicate, timeout=5.0):
    """The log is drained by a thread; give it a moment to catch up."""
    deadline = time.time() + timeout
    while not predicate() and time.time() < deadline:
        time.sleep(0.05)
    return predicate()


def profiles(svc, mfa_profile, base_profile, login_args=""):
    """`[profile MFA]` runs `tokengate login --profile BASE`; both talk to the service."""
    return (
        f"[profile {mfa_profile}]\n"
        f"credential_process = {os.environ['TOKENGATE_BIN']} login --profile {base_profile}"
        f"{login_args}\n"
        f"endpoint_url = {svc.url}\n"
        "region = us-east-1\n"
        "\n"
        f"[profile {base_profile}]\n"
        f"endpoint_url = {svc.url}\n"
        "region = us-east-1\n"
    )


def test_aws_cli_uses_login_as_credential_process_and_the_cache(logged_svc, tmp_path):
    svc = logged_svc
    iam = svc.root_client("iam")
    iam.create_user(UserName="alice")
    key = iam.create_access_key(UserName="alice")["AccessKey"]
    alice = key["AccessKeyId"], key["SecretAccessKey"]
    home = AwsHome(tmp_path)
    home.write(
        profiles(svc, "mfa", "base"),
        f"[base]\naws_access_key_id = {alice[0]}\naws_secret_access_key = {alice[1]}\n",
    )
    assert wait_for_log(svc, lambda: any('"CreateAccessKey"' in line for line in svc.log))
    before = session_token_calls(svc)

    out = home.aws("sts", "get-caller-identity", "--profile", "mfa")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/alice"
    assert wait_for_log(svc, lambda: session_token_calls(svc) == before + 1)

    # The `mfa` profile has no keys of its own: the CLI signed with the session from the
    # cache file, which holds temporary credentials in the credential_process format.
    (cached,) = home.cache_files()
    assert os.stat(cached).st_mode & 0o777 == 0o600
    assert os.stat(home.cache).st_mode & 0o777 == 0o700
    with open(cached) as f:
        doc = json.load(f)
    assert doc["Version"] == 1 and doc["AccessKeyId"].startswith("ASIA")
    mtime = os.stat(cached).st_mtime_ns

    # A second CLI run starts a new credential_process, which answers from the cache.
    out = home.aws("sts", "get-caller-identity", "--profile", "mfa")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/alice"
    time.sleep(0.5)
    assert session_token_calls(svc) == before + 1, "the second run must not call the service"
    assert os.stat(cached).st_mtime_ns == mtime
    with open(cached) as f:
        assert json.load(f) == doc

    # The cached session is a working identity of its own.
    temp = svc.client("sts", doc["AccessKeyId"], doc["SecretAccessKey"], doc["SessionToken"])
    assert temp.get_caller_identity()["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/alice"


def settled_now():
    """Now, at least 3 s from a 30 s step boundary (the test's and the server's step agree)."""
    while True:
        now = time.time()
        if 3 <= now % 30 <= 26:
            return now
        time.sleep(0.5)


def test_aws_cli_logs_in_with_a_totp_code(svc, tmp_path):
    iam = svc.root_client("iam")
    iam.create_user(UserName="tess")
    key = iam.create_access_key(UserName="tess")["AccessKey"]
    dev = iam.create_virtual_mfa_device(VirtualMFADeviceName="tess-phone")["VirtualMFADevice"]
    serial = dev["SerialNumber"]
    totp = pyotp.TOTP(dev["Base32StringSeed"].decode())
    now = settled_now()
    iam.enable_mfa_device(
        UserName="tess",
        SerialNumber=serial,
        AuthenticationCode1=totp.at(now - 120),
        AuthenticationCode2=totp.at(now - 90),
    )
    home = AwsHome(tmp_path)
    credentials = (
        f"[base]\naws_access_key_id = {key['AccessKeyId']}\n"
        f"aws_secret_access_key = {key['SecretAccessKey']}\n"
    )

    # A wrong code: the CLI reports the service's error, which login put on its stderr.
    wrong = totp.at(now - 3600)
    home.write(
        profiles(svc, "mfa", "base", f" --token-code {wrong}") + f"mfa_serial = {serial}\n",
        credentials,
    )
    out = home.aws("sts", "get-caller-identity", "--profile", "mfa")
    assert out.returncode != 0
    assert "AccessDenied" in out.stderr, out.stderr
    assert home.cache_files() == []

    # The current code: a session that carries the MFA context.
    home.write(
        profiles(svc, "mfa", "base", f" --token-code {totp.at(settled_now())}")
        + f"mfa_serial = {serial}\n",
        credentials,
    )
    out = home.aws("sts", "get-caller-identity", "--profile", "mfa")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/tess"
    (cached,) = home.cache_files()
    with open(cached) as f:
        token = json.load(f)["SessionToken"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["mfa"]["present"] is True
    assert claims["mfa"]["device"] == serial

    # The code is spent, but the session is cached: the next run needs no new code.
    out = home.aws("sts", "get-caller-identity", "--profile", "mfa")
    assert out.returncode == 0, out.stderr
