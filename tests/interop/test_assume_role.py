"""STS AssumeRole with boto3 and the AWS CLI: MFA by code before the trust policy, the
trust-policy rule of policy.md §1.3, durations and role chaining (§5.1, §8.1), session
policies, and role sessions authorized by the role's policies."""

import json

import pytest
from botocore.exceptions import ClientError

import test_foundation
from conftest import Service
from test_totp import INVALID_CODE, settled_now, new_device

ACCOUNT = "000000000000"
MFA_REQUIRED = "MultiFactorAuthentication is required"


@pytest.fixture(scope="module")
def mfa_svc():
    """mfa.required = true (the default)."""
    s = Service({"TOKENGATE_MFA_LOCKOUT_SECS": "2"})
    yield s
    s.stop()


def trust(principal, condition=None):
    statement = {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"}
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def allow(action, resource="*"):
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": action, "Resource": resource}]})


def role_arn(name):
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


def user_with_key(svc, name, identity_policy=None):
    iam = svc.root_client("iam")
    iam.create_user(UserName=name)
    if identity_policy:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=identity_policy)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def session_clients(svc, creds):
    c = creds["Credentials"]
    args = (c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
    return svc.client("sts", *args), svc.client("iam", *args)


def error_of(excinfo):
    err = excinfo.value.response["Error"]
    return err["Code"], err["Message"]


def test_mfa_trust_policy_with_codes(mfa_svc):
    iam = mfa_svc.root_client("iam")
    iam.create_role(
        RoleName="admin",
        AssumeRolePolicyDocument=trust(
            ACCOUNT, {"Bool": {"aws:MultiFactorAuthPresent": "true"}}),
    )
    iam.attach_role_policy(RoleName="admin",
                           PolicyArn="arn:aws:iam::aws:policy/IAMReadOnlyAccess")
    key = user_with_key(mfa_svc, "ann", allow("sts:AssumeRole", role_arn("admin")))
    serial, totp = new_device(mfa_svc, "ann", "ann")
    sts = mfa_svc.client("sts", *key)

    # No code: refused (mfa.required), as GetSessionToken is.
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=role_arn("admin"), RoleSessionName="s1")
    code, message = error_of(e)
    assert code == "AccessDenied" and MFA_REQUIRED in message

    now = settled_now()
    creds = sts.assume_role(RoleArn=role_arn("admin"), RoleSessionName="s1",
                            SerialNumber=serial, TokenCode=totp.at(now))
    assert creds["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/admin/s1"
    assert creds["AssumedRoleUser"]["AssumedRoleId"].startswith("AROA")
    assert creds["AssumedRoleUser"]["AssumedRoleId"].endswith(":s1")
    assert creds["Credentials"]["AccessKeyId"].startswith("ASIA")
    assert "PackedPolicySize" not in creds

    # The same code again: AWS's wrong-code text.
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=role_arn("admin"), RoleSessionName="s1",
                        SerialNumber=serial, TokenCode=totp.at(now))
    assert error_of(e) == ("AccessDenied", INVALID_CODE)

    # A fresh code (the next step) works.
    sts.assume_role(RoleArn=role_arn("admin"), RoleSessionName="s2",
                    SerialNumber=serial, TokenCode=totp.at(now + 30))

    role_sts, role_iam = session_clients(mfa_svc, creds)
    who = role_sts.get_caller_identity()
    assert who["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/admin/s1"
    assert who["UserId"] == creds["AssumedRoleUser"]["AssumedRoleId"]
    assert who["Account"] == ACCOUNT

    # The role's attached policy decides the session's IAM calls.
    assert any(u["UserName"] == "ann" for u in role_iam.list_users()["Users"])
    with pytest.raises(ClientError) as e:
        role_iam.create_user(UserName="mallory")
    code, message = error_of(e)
    assert code == "AccessDenied"
    assert message.startswith(
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/admin/s1 is not authorized to perform: "
        "iam:CreateUser"), message

    # A role session cannot call GetSessionToken.
    with pytest.raises(ClientError) as e:
        role_sts.get_session_token()
    assert error_of(e) == ("AccessDenied", "Cannot call GetSessionToken with session credentials")


def test_aws_cli_assume_role_with_a_code(mfa_svc):
    iam = mfa_svc.root_client("iam")
    key = user_with_key(mfa_svc, "cli")
    iam.create_role(
        RoleName="cli-role",
        AssumeRolePolicyDocument=trust(
            f"arn:aws:iam::{ACCOUNT}:user/cli", {"Bool": {"aws:MultiFactorAuthPresent": "true"}}),
    )
    serial, totp = new_device(mfa_svc, "cli", "cli")
    out = test_foundation.aws_cli(
        mfa_svc, "sts", "assume-role", "--role-arn", role_arn("cli-role"),
        "--role-session-name", "ss", "--serial-number", serial,
        "--token-code", totp.at(settled_now()), key=key)
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert body["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/cli-role/ss"


def test_trust_naming_the_user_needs_no_identity_allow(svc):
    iam = svc.root_client("iam")
    key = user_with_key(svc, "direct")
    creds = user_with_key(svc, "direct2")
    iam.create_role(RoleName="named",
                    AssumeRolePolicyDocument=trust(f"arn:aws:iam::{ACCOUNT}:user/direct"))
    iam.create_role(RoleName="account-only", AssumeRolePolicyDocument=trust(ACCOUNT))
    sts = svc.client("sts", *key)
    out = sts.assume_role(RoleArn=role_arn("named"), RoleSessionName="dd")
    assert out["AssumedRoleUser"]["Arn"].endswith(":assumed-role/named/dd")

    # The account named, no identity allow: refused, with AWS's message.
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=role_arn("account-only"), RoleSessionName="dd")
    code, message = error_of(e)
    assert code == "AccessDenied"
    assert message.startswith(
        f"User: arn:aws:iam::{ACCOUNT}:user/direct is not authorized to perform: sts:AssumeRole "
        f"on resource: {role_arn('account-only')}"), message
    # Not named at all (another user): refused too.
    other = svc.client("sts", *creds)
    with pytest.raises(ClientError) as e:
        other.assume_role(RoleArn=role_arn("named"), RoleSessionName="dd")
    assert error_of(e)[0] == "AccessDenied"
    # A role that does not exist: the same refusal.
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=role_arn("nope"), RoleSessionName="dd")
    assert error_of(e)[0] == "AccessDenied"


def test_external_id_durations_and_chaining(svc):
    iam = svc.root_client("iam")
    iam.create_role(
        RoleName="vendor", MaxSessionDuration=7200,
        AssumeRolePolicyDocument=trust(
            ACCOUNT, {"StringEquals": {"sts:ExternalId": "right-id"}}),
    )
    iam.put_role_policy(RoleName="vendor", PolicyName="chain",
                        PolicyDocument=allow("sts:AssumeRole", role_arn("vendor")))
    key = user_with_key(svc, "carl", allow("sts:AssumeRole", role_arn("vendor")))
    sts = svc.client("sts", *key)
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=role_arn("vendor"), RoleSessionName="vv", ExternalId="wrong-id")
    assert error_of(e)[0] == "AccessDenied"
    creds = sts.assume_role(RoleArn=role_arn("vendor"), RoleSessionName="vv",
                            ExternalId="right-id", DurationSeconds=7200)

    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=role_arn("vendor"), RoleSessionName="vv",
                        ExternalId="right-id", DurationSeconds=7201)
    assert error_of(e) == (
        "ValidationError",
        "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")

    chaining = ("ValidationError",
                "The requested DurationSeconds exceeds the 1 hour session limit for roles "
                "assumed by role chaining.")
    # Role to role.
    role_sts, _ = session_clients(svc, creds)
    with pytest.raises(ClientError) as e:
        role_sts.assume_role(RoleArn=role_arn("vendor"), RoleSessionName="v2",
                             ExternalId="right-id", DurationSeconds=7200)
    assert error_of(e) == chaining
    chained = role_sts.assume_role(RoleArn=role_arn("vendor"), RoleSessionName="v2",
                                   ExternalId="right-id", DurationSeconds=3600)
    assert chained["AssumedRoleUser"]["Arn"].endswith(":assumed-role/vendor/v2")
    # GetSessionToken credentials count as chaining too (policy.md §8.1).
    gst = sts.get_session_token()
    gst_sts, _ = session_clients(svc, gst)
    with pytest.raises(ClientError) as e:
        gst_sts.assume_role(RoleArn=role_arn("vendor"), RoleSessionName="v3",
                            ExternalId="right-id", DurationSeconds=7200)
    assert error_of(e) == chaining


def test_session_policy_narrows_the_role(svc):
    iam = svc.root_client("iam")
    iam.create_role(RoleName="reader", AssumeRolePolicyDocument=trust(ACCOUNT))
    iam.attach_role_policy(RoleName="reader",
                           PolicyArn="arn:aws:iam::aws:policy/IAMReadOnlyAccess")
    key = user_with_key(svc, "dora", allow("sts:AssumeRole", role_arn("reader")))
    sts = svc.client("sts", *key)
    creds = sts.assume_role(RoleArn=role_arn("reader"), RoleSessionName="narrow",
                            Policy=allow("iam:GetRole"))
    assert 0 < creds["PackedPolicySize"] <= 100
    _, role_iam = session_clients(svc, creds)
    assert role_iam.get_role(RoleName="reader")["Role"]["RoleName"] == "reader"
    with pytest.raises(ClientError) as e:
        role_iam.list_users()
    code, message = error_of(e)
    assert code == "AccessDenied"
    assert message.endswith("because no session policy allows the iam:ListUsers action"), message
    # A session policy cannot grant more than the role has.
    wide = sts.assume_role(RoleArn=role_arn("reader"), RoleSessionName="wide",
                           Policy=allow("iam:*"))
    _, wide_iam = session_clients(svc, wide)
    with pytest.raises(ClientError) as e:
        wide_iam.create_user(UserName="nope")
    assert error_of(e)[0] == "AccessDenied"
    # A malformed session policy, and one too large when packed.
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=role_arn("reader"), RoleSessionName="bad", Policy="{}")
    assert error_of(e)[0] == "MalformedPolicyDocument"
    big = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": f"iam:Get{i:04}", "Resource": "*"} for i in range(60)]})
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=role_arn("reader"), RoleSessionName="big", Policy=big)
    code, message = error_of(e)
    assert code == "PackedPolicyTooLarge", message
    assert message.startswith("Packed policy consumes ") and message.endswith(
        "% of allotted space")
    # Managed policy ARNs as session policies.
    arn_creds = sts.assume_role(
        RoleArn=role_arn("reader"), RoleSessionName="arns",
        PolicyArns=[{"arn": "arn:aws:iam::aws:policy/IAMReadOnlyAccess"}])
    _, arn_iam = session_clients(svc, arn_creds)
    arn_iam.list_users()


def test_deleting_the_role_kills_its_sessions(svc):
    iam = svc.root_client("iam")
    iam.create_role(RoleName="doomed", AssumeRolePolicyDocument=trust(ACCOUNT))
    key = user_with_key(svc, "eve", allow("sts:AssumeRole", role_arn("doomed")))
    creds = svc.client("sts", *key).assume_role(RoleArn=role_arn("doomed"),
                                                RoleSessionName="ss")
    role_sts, _ = session_clients(svc, creds)
    role_sts.get_caller_identity()
    iam.delete_role(RoleName="doomed")
    with pytest.raises(ClientError) as e:
        role_sts.get_caller_identity()
    assert error_of(e)[0] == "InvalidClientTokenId"
    # Re-created under the same name (a new id), the old session stays dead.
    iam.create_role(RoleName="doomed", AssumeRolePolicyDocument=trust(ACCOUNT))
    with pytest.raises(ClientError) as e:
        role_sts.get_caller_identity()
    assert error_of(e)[0] == "InvalidClientTokenId"


def test_root_cannot_assume_roles(svc):
    iam = svc.root_client("iam")
    iam.create_role(RoleName="for-root", AssumeRolePolicyDocument=trust(ACCOUNT))
    with pytest.raises(ClientError) as e:
        svc.root_client("sts").assume_role(RoleArn=role_arn("for-root"), RoleSessionName="rr")
    assert error_of(e) == ("AccessDenied", "Roles may not be assumed by root accounts.")


def test_validation_errors(svc):
    sts = svc.root_client("sts")
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=role_arn("x"), RoleSessionName="bad name")
    code, message = error_of(e)
    assert code == "ValidationError" and "roleSessionName" in message, message
