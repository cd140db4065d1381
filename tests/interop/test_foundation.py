"""The foundation against real clients: boto3, the AWS CLI, curl and PyJWT."""

import base64
import datetime
import hashlib
import json
import os
import subprocess
import sys
import urllib.request
from unittest import mock

import botocore.auth
import jwt
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

ACCOUNT = "000000000000"


def error_of(excinfo):
    err = excinfo.value.response["Error"]
    return err["Code"], err["Message"]


def test_root_creates_alice_who_sees_herself(svc, alice):
    sts = svc.client("sts", *alice)
    ident = sts.get_caller_identity()
    assert ident["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/alice"
    assert ident["Account"] == ACCOUNT
    assert ident["UserId"].startswith("AIDA")
    assert ident["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert len(ident["ResponseMetadata"]["RequestId"]) == 36
    user = svc.root_client("iam").get_user(UserName="alice")["User"]
    assert user["Arn"] == ident["Arn"] and user["UserId"] == ident["UserId"]
    keys = svc.root_client("iam").list_access_keys(UserName="alice")["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in keys] == [alice[0]]


def test_session_token_works_for_identity_and_not_for_another_session(svc, alice):
    creds = svc.client("sts", *alice).get_session_token(DurationSeconds=900)["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA") and len(creds["AccessKeyId"]) == 20
    assert len(creds["SecretAccessKey"]) == 40
    left = creds["Expiration"] - datetime.datetime.now(datetime.timezone.utc)
    assert datetime.timedelta(seconds=880) < left <= datetime.timedelta(seconds=900)
    temp = svc.client("sts", creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    assert temp.get_caller_identity()["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/alice"
    with pytest.raises(ClientError) as e:
        temp.get_session_token()
    assert error_of(e) == ("AccessDenied", "Cannot call GetSessionToken with session credentials")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_wrong_secret_is_signature_does_not_match(svc, alice):
    with pytest.raises(ClientError) as e:
        svc.client("sts", alice[0], "x" * 40).get_caller_identity()
    code, message = error_of(e)
    assert code == "SignatureDoesNotMatch"
    assert message.startswith("The request signature we calculated does not match")


def test_unknown_key_is_invalid_client_token_id(svc):
    with pytest.raises(ClientError) as e:
        svc.client("sts", "AKIAAAAAAAAAAAAAAAAA", "x" * 40).get_caller_identity()
    assert error_of(e) == (
        "InvalidClientTokenId",
        "The security token included in the request is invalid.",
    )


def signed_post(svc, key_id, secret, params, when, service="sts"):
    """A request signed by botocore's own SigV4 signer at time `when`."""
    request = AWSRequest(
        method="POST",
        url=svc.url + "/",
        data=params,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=when):
        botocore.auth.SigV4Auth(Credentials(key_id, secret), service, "us-east-1").add_auth(request)
    prepared = request.prepare()
    body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
    req = urllib.request.Request(prepared.url, data=body, method="POST")
    for k, v in prepared.headers.items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_request_signed_20_minutes_ago_has_expired(svc, alice):
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    params = {"Action": "GetCallerIdentity", "Version": "2011-06-15"}
    status, body = signed_post(svc, *alice, params, now)
    assert status == 200, body
    status, body = signed_post(svc, *alice, params, now - datetime.timedelta(minutes=20))
    assert status == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in body
    assert "<Message>Signature expired: " in body and " - 15 min.)</Message>" in body


def test_inactive_key_is_refused_and_can_be_reactivated(svc):
    iam = svc.root_client("iam")
    iam.create_user(UserName="carol")
    key = iam.create_access_key(UserName="carol")["AccessKey"]
    sts = svc.client("sts", key["AccessKeyId"], key["SecretAccessKey"])
    assert sts.get_caller_identity()["Arn"].endswith(":user/carol")
    iam.update_access_key(UserName="carol", AccessKeyId=key["AccessKeyId"], Status="Inactive")
    with pytest.raises(ClientError) as e:
        sts.get_caller_identity()
    assert error_of(e)[0] == "InvalidClientTokenId"
    iam.update_access_key(UserName="carol", AccessKeyId=key["AccessKeyId"], Status="Active")
    assert sts.get_caller_identity()["Arn"].endswith(":user/carol")


def test_presigned_get_caller_identity_works_with_curl(svc, alice):
    # HttpMethod="GET", as `aws eks get-token` does: botocore otherwise signs the
    # operation's own method (POST), which a GET from curl cannot match.
    url = svc.client("sts", *alice).generate_presigned_url(
        "get_caller_identity", ExpiresIn=60, HttpMethod="GET"
    )
    out = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", url], capture_output=True, text=True)
    body, _, status = out.stdout.rpartition("\n")
    assert status == "200", body
    assert f"<Arn>arn:aws:iam::{ACCOUNT}:user/alice</Arn>" in body
    # Tampering with the signed query is caught.
    out = subprocess.run(
        ["curl", "-sS", url.replace("GetCallerIdentity", "GetCallerIdentitx")],
        capture_output=True,
        text=True,
    )
    assert "<Code>SignatureDoesNotMatch</Code>" in out.stdout


def test_session_token_verifies_against_the_jwks(svc, alice):
    creds = svc.client("sts", *alice).get_session_token(DurationSeconds=900)["Credentials"]
    with urllib.request.urlopen(svc.url + "/.well-known/jwks.json") as r:
        jwks_doc = json.load(r)
    jwks = jwt.PyJWKSet.from_dict(jwks_doc)
    kid = jwt.get_unverified_header(creds["SessionToken"])["kid"]
    key = next(k for k in jwks.keys if k.key_id == kid)
    assert jwt.get_unverified_header(creds["SessionToken"])["alg"] == "ES256"
    # The kid is the RFC 7638 thumbprint of the key, computed here independently.
    jwk = next(k for k in jwks_doc["keys"] if k["kid"] == kid)
    canonical = json.dumps({m: jwk[m] for m in ("crv", "kty", "x", "y")}, separators=(",", ":"))
    thumbprint = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest())
    assert thumbprint.rstrip(b"=").decode() == kid
    claims = jwt.decode(creds["SessionToken"], key, algorithms=["ES256"], issuer="tokengate")
    assert claims["sub"] == f"arn:aws:iam::{ACCOUNT}:user/alice"
    assert claims["akid"] == creds["AccessKeyId"]
    assert claims["src"] == alice[0]
    assert claims["mfa"]["present"] is False
    assert claims["exp"] - claims["iat"] == 900
    with pytest.raises(jwt.InvalidSignatureError):
        head, body, sig = creds["SessionToken"].split(".")
        forged = jwt.utils.base64url_encode(
            json.dumps(dict(claims, sub="arn:aws:iam::000000000000:root")).encode()
        ).decode()
        jwt.decode(f"{head}.{forged}.{sig}", key, algorithms=["ES256"])


def test_bad_parameters_get_aws_validation_errors(svc, alice):
    sts = svc.client("sts", *alice)
    with pytest.raises(ClientError) as e:
        sts.get_session_token(DurationSeconds=999999)
    assert error_of(e) == (
        "ValidationError",
        "1 validation error detected: Value '999999' at 'durationSeconds' failed to satisfy "
        "constraint: Member must have value less than or equal to 129600",
    )
    code = "eifjccgncvncgfkjgjtjbfjilgtjrjbvgbvelhivvjlt"
    with pytest.raises(ClientError) as e:
        sts.get_session_token(SerialNumber=f"arn:aws:iam::{ACCOUNT}:mfa/alice", TokenCode=code)
    assert error_of(e) == (
        "ValidationError",
        f"2 validation errors detected: Value '{code}' at 'tokenCode' failed to satisfy "
        "constraint: Member must have length less than or equal to 6; "
        f"Value '{code}' at 'tokenCode' failed to satisfy constraint: Member must satisfy "
        "regular expression pattern: [\\d]*",
    )
    with pytest.raises(ClientError) as e:
        svc.root_client("iam").create_user(UserName="bad name!")
    assert error_of(e)[0] == "ValidationError"
    assert "at 'userName' failed to satisfy constraint: Member must satisfy regular " \
        "expression pattern: [\\w+=,.@-]+" in error_of(e)[1]


def test_iam_errors_have_aws_codes(svc, alice):
    iam = svc.root_client("iam")
    with pytest.raises(ClientError) as e:
        iam.create_user(UserName="alice")
    assert error_of(e) == ("EntityAlreadyExists", "User with name alice already exists.")
    with pytest.raises(ClientError) as e:
        iam.get_user(UserName="nobody")
    assert error_of(e) == ("NoSuchEntity", "The user with name nobody cannot be found.")
    iam.create_access_key(UserName="alice")
    with pytest.raises(ClientError) as e:
        iam.create_access_key(UserName="alice")
    assert error_of(e) == ("LimitExceeded", "Cannot exceed quota for AccessKeysPerUser: 2")
    with pytest.raises(ClientError) as e:
        iam.delete_user(UserName="alice")
    assert error_of(e)[0] == "DeleteConflict"
    # alice has no policies: IAM is closed to her.
    with pytest.raises(ClientError) as e:
        svc.client("iam", *alice).list_users()
    code, message = error_of(e)
    assert code == "AccessDenied"
    assert message.startswith(f"User: arn:aws:iam::{ACCOUNT}:user/alice is not authorized to perform: iam:ListUsers")


def test_user_lifecycle_and_pagination(svc):
    iam = svc.root_client("iam")
    for name in ("u1", "u2", "u3"):
        iam.create_user(UserName=name, Path="/team/")
    page = iam.list_users(PathPrefix="/team/", MaxItems=2)
    assert [u["UserName"] for u in page["Users"]] == ["u1", "u2"] and page["IsTruncated"]
    rest = iam.list_users(PathPrefix="/team/", Marker=page["Marker"])
    assert [u["UserName"] for u in rest["Users"]] == ["u3"] and not rest["IsTruncated"]
    assert iam.get_user(UserName="u1")["User"]["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/team/u1"
    key = iam.create_access_key(UserName="u3")["AccessKey"]["AccessKeyId"]
    iam.delete_access_key(UserName="u3", AccessKeyId=key)
    iam.delete_user(UserName="u3")
    with pytest.raises(ClientError) as e:
        iam.get_user(UserName="u3")
    assert error_of(e)[0] == "NoSuchEntity"


def test_mfa_required_by_default(strict_svc):
    iam = strict_svc.root_client("iam")
    iam.create_user(UserName="dave")
    key = iam.create_access_key(UserName="dave")["AccessKey"]
    sts = strict_svc.client("sts", key["AccessKeyId"], key["SecretAccessKey"])
    with pytest.raises(ClientError) as e:
        sts.get_session_token()
    code, message = error_of(e)
    assert code == "AccessDenied" and "MultiFactorAuthentication is required" in message
    with pytest.raises(ClientError) as e:
        sts.get_session_token(SerialNumber=f"arn:aws:iam::{ACCOUNT}:mfa/nothing", TokenCode="123456")
    assert error_of(e) == (
        "AccessDenied",
        "MultiFactorAuthentication failed, unable to validate MFA code.  Please verify your MFA "
        "serial number is valid and associated with this user.",
    )


def aws_cli(svc, *args, key=None):
    env = dict(os.environ)
    key_id, secret = key or (svc.root["AccessKeyId"], svc.root["SecretAccessKey"])
    env.update({
        "AWS_ACCESS_KEY_ID": key_id,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    })
    env.pop("AWS_SESSION_TOKEN", None)
    env.pop("AWS_PROFILE", None)
    aws = os.path.join(os.path.dirname(sys.executable), "aws")
    return subprocess.run(
        [aws, "--endpoint-url", svc.url, "--output", "json", *args],
        capture_output=True, text=True, env=env,
    )


def test_aws_cli_creates_a_user_and_reads_identity(svc):
    out = aws_cli(svc, "iam", "create-user", "--user-name", "erin")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["User"]["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/erin"
    out = aws_cli(svc, "iam", "create-access-key", "--user-name", "erin")
    key = json.loads(out.stdout)["AccessKey"]
    out = aws_cli(svc, "sts", "get-caller-identity", key=(key["AccessKeyId"], key["SecretAccessKey"]))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/erin"
    out = aws_cli(svc, "sts", "get-session-token", "--duration-seconds", "60")
    assert out.returncode != 0  # botocore's own min check
    out = aws_cli(svc, "sts", "get-caller-identity", key=(key["AccessKeyId"], "y" * 40))
    assert out.returncode != 0 and "SignatureDoesNotMatch" in out.stderr
