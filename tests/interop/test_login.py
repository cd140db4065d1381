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
from test_totp import new_device

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


# ----- Role profiles (botocore's AssumeRoleProvider, aws-vault's MFA session) ----------------

def calls_of(svc, action):
    """`action` calls the service answered, from its JSON log."""
    count = 0
    for line in list(svc.log):
        try:
            fields = json.loads(line).get("fields", {})
        except ValueError:
            continue
        if fields.get("action") == action:
            count += 1
    return count


def mfa_role_and_user(svc, role, user, max_session=3600):
    """A role trusting the account with MFA present, and a user allowed to assume it with a
    TOTP device: (role ARN, (key id, secret), serial, totp)."""
    iam = svc.root_client("iam")
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole",
        "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}}]}
    arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust),
                          MaxSessionDuration=max_session)["Role"]["Arn"]
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="assume", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": arn}]}))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    serial, totp = new_device(svc, f"{user}-phone", user)
    return arn, (key["AccessKeyId"], key["SecretAccessKey"]), serial, totp


def role_profiles(svc, arn, serial, code, admin_extra=""):
    """`base` (the user's keys + mfa_serial), `admin` (the role) and `admin-process`
    (`tokengate login --profile admin`)."""
    return (
        f"[profile base]\nendpoint_url = {svc.url}\nregion = us-east-1\n"
        f"mfa_serial = {serial}\n\n"
        f"[profile admin]\nrole_arn = {arn}\nsource_profile = base\nmfa_serial = {serial}\n"
        f"endpoint_url = {svc.url}\nregion = us-east-1\n{admin_extra}\n"
        f"[profile admin-process]\n"
        f"credential_process = {os.environ['TOKENGATE_BIN']} login --profile admin"
        f" --token-code {code}\n"
        f"endpoint_url = {svc.url}\nregion = us-east-1\n"
    )


def test_login_assumes_a_role_through_an_mfa_session(logged_svc, tmp_path):
    """aws-vault's pattern: GetSessionToken with the code for `base`, then AssumeRole with
    that session and no code; the role's trust policy sees the session's MFA."""
    svc = logged_svc
    arn, key, serial, totp = mfa_role_and_user(svc, "ops", "olga")
    home = AwsHome(tmp_path)
    home.write(
        role_profiles(svc, arn, serial, totp.at(settled_now())),
        f"[base]\naws_access_key_id = {key[0]}\naws_secret_access_key = {key[1]}\n",
    )
    assert wait_for_log(svc, lambda: any('"CreateAccessKey"' in line for line in svc.log))
    sessions, assumes = calls_of(svc, "GetSessionToken"), calls_of(svc, "AssumeRole")

    out = home.aws("sts", "get-caller-identity", "--profile", "admin-process")
    assert out.returncode == 0, out.stderr
    who = json.loads(out.stdout)["Arn"]
    assert who.startswith(f"arn:aws:sts::{ACCOUNT}:assumed-role/ops/botocore-session-"), who
    assert wait_for_log(svc, lambda: calls_of(svc, "AssumeRole") == assumes + 1)
    assert calls_of(svc, "GetSessionToken") == sessions + 1
    # Two files: base's MFA session (shared with `login --profile base`) and the role's.
    files = home.cache_files()
    assert len(files) == 2
    assert all(os.stat(f).st_mode & 0o777 == 0o600 for f in files)

    # Served from the cache: the code in the config is spent, and no call is made.
    out = home.aws("sts", "get-caller-identity", "--profile", "admin-process")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["Arn"] == who
    time.sleep(0.5)
    assert calls_of(svc, "AssumeRole") == assumes + 1
    assert calls_of(svc, "GetSessionToken") == sessions + 1


def test_login_assumes_a_role_with_a_code_for_long_sessions(logged_svc, tmp_path):
    """duration_seconds above the chaining limit: AssumeRole directly with the code."""
    svc = logged_svc
    arn, key, serial, totp = mfa_role_and_user(svc, "ops-long", "otto", max_session=7200)
    home = AwsHome(tmp_path)
    home.write(
        role_profiles(svc, arn, serial, totp.at(settled_now()),
                      "duration_seconds = 7200\nrole_session_name = otto-long\n"
                      "external_id = ignored-by-the-trust-policy\n"),
        f"[base]\naws_access_key_id = {key[0]}\naws_secret_access_key = {key[1]}\n",
    )
    assert wait_for_log(svc, lambda: any('"CreateAccessKey"' in line for line in svc.log))
    sessions, assumes = calls_of(svc, "GetSessionToken"), calls_of(svc, "AssumeRole")
    out = home.aws("sts", "get-caller-identity", "--profile", "admin-process")
    assert out.returncode == 0, out.stderr
    arn_long = f"arn:aws:sts::{ACCOUNT}:assumed-role/ops-long/otto-long"
    assert json.loads(out.stdout)["Arn"] == arn_long
    assert wait_for_log(svc, lambda: calls_of(svc, "AssumeRole") == assumes + 1)
    assert calls_of(svc, "GetSessionToken") == sessions
    (cached,) = home.cache_files()
    with open(cached) as f:
        doc = json.load(f)
    left = time.mktime(time.strptime(doc["Expiration"], "%Y-%m-%dT%H:%M:%SZ")) - time.mktime(
        time.gmtime())
    assert left > 3600


def test_login_follows_a_two_hop_chain_from_environment_credentials(logged_svc, tmp_path):
    """`credential_source = Environment` (the keys in AWS_ACCESS_KEY_ID/…) assumes `ops` with
    a code; `deep`, whose source profile is that role, is assumed with ops's session, which
    carries the MFA into deep's trust policy (role chaining, at most an hour)."""
    svc = logged_svc
    arn, key, serial, totp = mfa_role_and_user(svc, "ops-env", "erin")
    iam = svc.root_client("iam")
    iam.put_role_policy(RoleName="ops-env", PolicyName="hop", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}))
    deep = iam.create_role(RoleName="deep", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": arn}, "Action": "sts:AssumeRole",
            "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}}]}))["Role"]["Arn"]
    home = AwsHome(tmp_path)
    home.write(
        f"[profile env-ops]\nrole_arn = {arn}\ncredential_source = Environment\n"
        f"mfa_serial = {serial}\nrole_session_name = erin-ops\n"
        f"endpoint_url = {svc.url}\nregion = us-east-1\n\n"
        f"[profile deeper]\nrole_arn = {deep}\nsource_profile = env-ops\n"
        f"role_session_name = erin-deep\nendpoint_url = {svc.url}\nregion = us-east-1\n",
        "",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_CONFIG_FILE": home.config, "AWS_SHARED_CREDENTIALS_FILE": home.credentials,
                "HOME": home.root, "XDG_CACHE_HOME": os.path.join(home.root, "cache"),
                "AWS_ACCESS_KEY_ID": key[0], "AWS_SECRET_ACCESS_KEY": key[1]})
    out = subprocess.run(
        [os.environ["TOKENGATE_BIN"], "login", "--profile", "deeper",
         "--token-code", totp.at(settled_now())],
        capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    creds = json.loads(out.stdout)
    sts = svc.client("sts", creds["AccessKeyId"], creds["SecretAccessKey"],
                     creds["SessionToken"])
    assert sts.get_caller_identity()["Arn"] == \
        f"arn:aws:sts::{ACCOUNT}:assumed-role/deep/erin-deep"
    # Without the environment's keys, botocore's text.
    del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    out = subprocess.run([os.environ["TOKENGATE_BIN"], "login", "--profile", "deeper",
                          "--no-cache", "--token-code", "123456"],
                         capture_output=True, text=True, env=env, timeout=60,
                         stdin=subprocess.DEVNULL)
    assert out.returncode != 0
    assert "No credentials found in credential_source referenced in profile env-ops" \
        in out.stderr, out.stderr


def test_login_role_profile_errors(logged_svc, tmp_path):
    svc = logged_svc
    home = AwsHome(tmp_path)
    bin_ = os.environ["TOKENGATE_BIN"]
    home.write(
        f"[profile a]\nrole_arn = arn:aws:iam::{ACCOUNT}:role/x\nsource_profile = b\n"
        f"endpoint_url = {svc.url}\n"
        f"[profile b]\nrole_arn = arn:aws:iam::{ACCOUNT}:role/y\nsource_profile = a\n"
        f"[profile both]\nrole_arn = arn:aws:iam::{ACCOUNT}:role/x\nsource_profile = b\n"
        "credential_source = Environment\n"
        f"[profile first]\nrole_arn = arn:aws:iam::{ACCOUNT}:role/x\nsource_profile = k\n"
        f"endpoint_url = {svc.url}\n"
        f"[profile key]\nrole_arn = arn:aws:iam::{ACCOUNT}:role/z\nsource_profile = first\n"
        f"mfa_serial = arn:aws:iam::{ACCOUNT}:u2f/user/k/fidosecuritykey-ABC\n"
        f"endpoint_url = {svc.url}\n",
        "[k]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = s\n",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_CONFIG_FILE": home.config, "AWS_SHARED_CREDENTIALS_FILE": home.credentials,
                "HOME": home.root})

    def login(profile):
        return subprocess.run([bin_, "login", "--profile", profile, "--no-cache"],
                              capture_output=True, text=True, env=env, timeout=60,
                              stdin=subprocess.DEVNULL)

    out = login("a")
    assert out.returncode != 0
    assert ("Infinite loop in credential configuration detected. Attempting to load from "
            "profile a which has already been visited. Visited profiles: ['a', 'b']"
            in out.stderr), out.stderr
    out = login("both")
    assert 'The profile "both" contains both source_profile and credential_source.' in out.stderr
    # A touch for a hop signed with a role session: refused before anything is sent (a
    # security-key challenge needs long-term keys), with the way out.
    out = login("key")
    assert out.returncode != 0
    assert ("is a security key, but this AssumeRole is signed with session credentials"
            in out.stderr), out.stderr
    assert "Put the key's serial on the profile that holds the long-term keys" in out.stderr


def test_botocores_own_assume_role_provider(logged_svc, tmp_path, monkeypatch):
    """boto3 with `profile_name="admin"`: botocore's AssumeRoleProvider sends the code on
    AssumeRole itself; its prompter is replaced by pyotp."""
    import boto3
    svc = logged_svc
    arn, key, serial, totp = mfa_role_and_user(svc, "ops-boto", "bea")
    home = AwsHome(tmp_path)
    home.write(
        role_profiles(svc, arn, serial, "000000", "role_session_name = bea-boto\n"),
        f"[base]\naws_access_key_id = {key[0]}\naws_secret_access_key = {key[1]}\n",
    )
    for k in list(os.environ):
        if k.startswith("AWS_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("AWS_CONFIG_FILE", home.config)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", home.credentials)
    session = boto3.Session(profile_name="admin")
    provider = session._session.get_component("credential_provider").get_provider("assume-role")
    prompts = []

    def prompter(prompt):
        prompts.append(prompt)
        return totp.at(settled_now())

    provider._prompter = prompter
    who = session.client("sts").get_caller_identity()
    assert who["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/ops-boto/bea-boto", who
    assert prompts == [f"Enter MFA code for {serial}: "]
