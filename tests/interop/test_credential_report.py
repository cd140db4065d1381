"""The IAM credential report through boto3 and the AWS CLI against the real binary
(portal.md section 1): ReportNotPresent before any, STARTED then COMPLETE, the exact
22-column header, the <root_account> row first, every cell a date or one of AWS's tokens,
and the reference rows — a user with no password, a password never used, a key never used,
mfa_active after enabling a TOTP device and after registering a security key, and a key
used via STS (date, `sts`, the region the request was signed for).

The four-hour freshness and ReportExpired need a clock the test can move: they are tested in
crates/server/tests/account_hygiene.rs."""

import base64
import csv
import io
import re

import boto3
import pytest
from botocore.config import Config

from conftest import Service
from test_foundation import aws_cli
from test_iam_entities import expect_status
from test_policies import ACCOUNT
from test_security_keys import register_fido2, sim  # noqa: F401 (sim is a fixture)
from test_totp import new_device

HEADER = (
    "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,"
    "password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,"
    "access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,"
    "access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,"
    "access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,"
    "cert_1_last_rotated,cert_2_active,cert_2_last_rotated"
)
DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")
TOKENS = {"true", "false", "N/A", "no_information", "not_supported"}
# Columns whose cells are names, ARNs, regions or services rather than dates or tokens.
FREE = {"user", "arn", "access_key_1_last_used_region", "access_key_1_last_used_service",
        "access_key_2_last_used_region", "access_key_2_last_used_service"}


@pytest.fixture(scope="module")
def report_svc(sim):  # noqa: F811 (the fixture imported above)
    """A service that trusts the simulator's attestation CA (for the security-key row)."""
    s = Service({"TOKENGATE_MFA_REQUIRED": "false", "TOKENGATE_SECURITY_KEYS_TRUST_ANCHORS": sim[1]})
    yield s
    s.stop()


def rows_of(content):
    text = content.decode() if isinstance(content, bytes) else content
    assert text.splitlines()[0] == HEADER
    return list(csv.DictReader(io.StringIO(text)))


def test_credential_report(report_svc, sim):  # noqa: F811
    iam = report_svc.root_client("iam")
    message = expect_status("ReportNotPresent", 410, iam.get_credential_report)
    assert message == (
        "The request was rejected because the credential report does not exist. To generate a "
        "credential report, use GenerateCredentialReport."
    )

    # Reference users (portal.md section 1.8).
    iam.create_user(UserName="cr-nopassword")
    iam.create_user(UserName="cr-password")
    iam.create_login_profile(UserName="cr-password", Password="Never-used-1!")
    iam.create_user(UserName="cr-keys")
    keys = [iam.create_access_key(UserName="cr-keys")["AccessKey"] for _ in range(2)]
    iam.update_access_key(UserName="cr-keys", AccessKeyId=keys[1]["AccessKeyId"], Status="Inactive")
    iam.create_user(UserName="cr-totp")
    new_device(report_svc, "cr-totp-phone", "cr-totp")
    iam.create_user(UserName="cr-fido")
    register_fido2(report_svc, sim, "cr-fido", "yubikey")
    # A key used via STS, signed for eu-west-2.
    iam.create_user(UserName="cr-sts")
    sts_key = iam.create_access_key(UserName="cr-sts")["AccessKey"]
    boto3.client(
        "sts", endpoint_url=report_svc.url, region_name="eu-west-2",
        aws_access_key_id=sts_key["AccessKeyId"], aws_secret_access_key=sts_key["SecretAccessKey"],
        config=Config(retries={"max_attempts": 1}),
    ).get_session_token()

    first = iam.generate_credential_report()
    assert first["State"] == "STARTED"
    assert first["Description"] == "No report exists. Starting a new report generation task"
    again = iam.generate_credential_report()
    assert again == {"State": "COMPLETE", "ResponseMetadata": again["ResponseMetadata"]}
    got = iam.get_credential_report()
    assert got["ReportFormat"] == "text/csv"
    assert got["GeneratedTime"].tzinfo is not None
    rows = rows_of(got["Content"])  # botocore has base64-decoded Content to bytes

    # Root first, then every user; every row 22 fields; every cell a date or a token.
    assert [r["user"] for r in rows] == [
        "<root_account>", "cr-fido", "cr-keys", "cr-nopassword", "cr-password", "cr-sts",
        "cr-totp",
    ]
    for r in rows:
        assert len(r) == 22 and None not in r, r
        for column, cell in r.items():
            if column not in FREE:
                assert cell in TOKENS or DATE.match(cell), (column, cell)
    by = {r["user"]: r for r in rows}
    root = by["<root_account>"]
    assert root["arn"] == f"arn:aws:iam::{ACCOUNT}:root"
    assert (root["password_enabled"], root["password_last_changed"], root["password_next_rotation"]) \
        == ("not_supported",) * 3
    assert root["access_key_1_active"] == "true" and DATE.match(root["access_key_1_last_rotated"])

    nopw = by["cr-nopassword"]
    assert nopw["arn"] == f"arn:aws:iam::{ACCOUNT}:user/cr-nopassword"
    assert (nopw["password_enabled"], nopw["password_last_used"]) == ("false", "N/A")
    assert (nopw["password_last_changed"], nopw["password_next_rotation"]) == ("N/A", "N/A")
    assert nopw["mfa_active"] == "false"
    assert (nopw["access_key_1_active"], nopw["access_key_1_last_rotated"]) == ("false", "N/A")

    unused = by["cr-password"]
    assert (unused["password_enabled"], unused["password_last_used"]) == ("true", "no_information")
    assert DATE.match(unused["password_last_changed"])
    assert unused["password_next_rotation"] == "N/A"

    k = by["cr-keys"]
    assert k["access_key_1_active"] == "true" and k["access_key_2_active"] == "false"
    for n in (1, 2):
        assert DATE.match(k[f"access_key_{n}_last_rotated"])
        assert [k[f"access_key_{n}_last_used_{c}"] for c in ("date", "region", "service")] \
            == ["N/A"] * 3
    assert [k["cert_1_active"], k["cert_1_last_rotated"], k["cert_2_active"], k["cert_2_last_rotated"]] \
        == ["false", "N/A", "false", "N/A"]

    used = by["cr-sts"]
    assert DATE.match(used["access_key_1_last_used_date"])
    assert (used["access_key_1_last_used_region"], used["access_key_1_last_used_service"]) \
        == ("eu-west-2", "sts")
    assert [used[f"access_key_2_last_used_{c}"] for c in ("date", "region", "service")] \
        == ["N/A"] * 3
    # The root key signed every IAM call above (us-east-1).
    assert (root["access_key_1_last_used_region"], root["access_key_1_last_used_service"]) \
        == ("us-east-1", "iam")

    assert by["cr-totp"]["mfa_active"] == "true"
    assert by["cr-fido"]["mfa_active"] == "true"

    # The AWS CLI prints Content as base64; decoded, it is the same report.
    out = aws_cli(report_svc, "iam", "generate-credential-report")
    assert out.returncode == 0, out.stderr
    assert '"State": "COMPLETE"' in out.stdout
    out = aws_cli(report_svc, "iam", "get-credential-report", "--query", "Content", "--output", "text")
    assert out.returncode == 0, out.stderr
    assert rows_of(base64.b64decode(out.stdout.strip())) == rows
