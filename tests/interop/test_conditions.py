"""The request context that enforcement builds (policy.md §3), seen through policies that
depend on each key, with boto3 against the real binary."""

import json
import time

import pytest
from botocore.exceptions import ClientError

ACCOUNT = "000000000000"


def policy(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def user_with_policy(svc, name, *statements):
    """User `name` with an access key and one inline policy; returns its IAM client."""
    root = svc.root_client("iam")
    root.create_user(UserName=name)
    root.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=policy(*statements))
    key = root.create_access_key(UserName=name)["AccessKey"]
    return svc.client("iam", key["AccessKeyId"], key["SecretAccessKey"]), key


def denied(call, *args, **kwargs):
    with pytest.raises(ClientError) as e:
        call(*args, **kwargs)
    assert e.value.response["Error"]["Code"] == "AccessDenied", e.value.response["Error"]
    return e.value.response["Error"]["Message"]


def test_source_ip_is_the_peer_address(svc):
    loopback, _ = user_with_policy(
        svc,
        "ctx-loopback",
        {"Effect": "Allow", "Action": "iam:ListUsers", "Resource": "*",
         "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}},
    )
    loopback.list_users()
    elsewhere, _ = user_with_policy(
        svc,
        "ctx-elsewhere",
        {"Effect": "Allow", "Action": "iam:ListUsers", "Resource": "*",
         "Condition": {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.0.2.1"]}}},
    )
    denied(elsewhere.list_users)


def test_principal_tags_feed_conditions_and_variables(svc):
    root = svc.root_client("iam")
    iam, _ = user_with_policy(
        svc,
        "ctx-tagged",
        # Users may read the users of their own team (a tag on them, and on the target
        # user's name prefix through a variable).
        {"Effect": "Allow", "Action": "iam:GetUser",
         "Resource": "arn:aws:iam::*:user/${aws:PrincipalTag/team}-*"},
        {"Effect": "Allow", "Action": "iam:ListUsers", "Resource": "*",
         "Condition": {"StringEquals": {"aws:PrincipalTag/team": "red"}}},
    )
    root.create_user(UserName="red-one")
    root.create_user(UserName="blue-one")
    denied(iam.list_users)
    denied(iam.get_user, UserName="red-one")
    root.tag_user(UserName="ctx-tagged", Tags=[{"Key": "team", "Value": "red"}])
    iam.list_users()
    assert iam.get_user(UserName="red-one")["User"]["UserName"] == "red-one"
    denied(iam.get_user, UserName="blue-one")
    # A tag change applies on the next request.
    root.tag_user(UserName="ctx-tagged", Tags=[{"Key": "team", "Value": "blue"}])
    denied(iam.list_users)
    assert iam.get_user(UserName="blue-one")["User"]["UserName"] == "blue-one"


def test_request_tags_and_tag_keys(svc):
    root = svc.root_client("iam")
    root.create_user(UserName="ctx-target")
    iam, _ = user_with_policy(
        svc,
        "ctx-tagger",
        {"Effect": "Allow", "Action": "iam:TagUser", "Resource": "*",
         "Condition": {"StringEquals": {"aws:RequestTag/env": ["dev", "test"]},
                       "ForAllValues:StringEquals": {"aws:TagKeys": ["env", "owner"]}}},
    )
    iam.tag_user(UserName="ctx-target", Tags=[{"Key": "env", "Value": "dev"}])
    iam.tag_user(
        UserName="ctx-target",
        Tags=[{"Key": "env", "Value": "test"}, {"Key": "owner", "Value": "me"}],
    )
    denied(iam.tag_user, UserName="ctx-target", Tags=[{"Key": "env", "Value": "prod"}])
    denied(
        iam.tag_user,
        UserName="ctx-target",
        Tags=[{"Key": "env", "Value": "dev"}, {"Key": "cost", "Value": "1"}],
    )
    assert root.list_user_tags(UserName="ctx-target")["Tags"] == [
        {"Key": "env", "Value": "test"},
        {"Key": "owner", "Value": "me"},
    ]


def test_time_and_policy_arn_keys(svc):
    root = svc.root_client("iam")
    past = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    future = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    iam, _ = user_with_policy(
        svc,
        "ctx-time",
        {"Effect": "Allow", "Action": "iam:ListUsers", "Resource": "*",
         "Condition": {"DateGreaterThan": {"aws:CurrentTime": past},
                       "DateLessThan": {"aws:CurrentTime": future},
                       "NumericGreaterThan": {"aws:EpochTime": "1700000000"}}},
        {"Effect": "Allow", "Action": "iam:ListGroups", "Resource": "*",
         "Condition": {"DateGreaterThan": {"aws:CurrentTime": future}}},
        # iam:PolicyARN: may attach only the read-only policy, to itself.
        {"Effect": "Allow", "Action": "iam:AttachUserPolicy",
         "Resource": "arn:aws:iam::*:user/${aws:username}",
         "Condition": {"ArnEquals": {
             "iam:PolicyARN": "arn:aws:iam::aws:policy/IAMReadOnlyAccess"}}},
    )
    iam.list_users()
    denied(iam.list_groups)
    denied(
        iam.attach_user_policy,
        UserName="ctx-time",
        PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess",
    )
    iam.attach_user_policy(
        UserName="ctx-time", PolicyArn="arn:aws:iam::aws:policy/IAMReadOnlyAccess"
    )
    assert [p["PolicyName"] for p in root.list_attached_user_policies(UserName="ctx-time")[
        "AttachedPolicies"]] == ["IAMReadOnlyAccess"]
    # IAMReadOnlyAccess now allows what the time window did not.
    iam.list_groups()


def test_mfa_keys_are_absent_for_long_term_keys(svc):
    """Bool vs BoolIfExists on aws:MultiFactorAuthPresent, and what a session carries."""
    iam, key = user_with_policy(
        svc,
        "ctx-mfa",
        {"Effect": "Allow", "Action": ["iam:ListUsers", "iam:ListGroups"], "Resource": "*"},
        # Deny + Bool false: does not apply to long-term keys (the key is absent).
        {"Effect": "Deny", "Action": "iam:ListUsers", "Resource": "*",
         "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "false"}}},
        # Deny + BoolIfExists false: applies to long-term keys.
        {"Effect": "Deny", "Action": "iam:ListGroups", "Resource": "*",
         "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}},
        # Null true: the key is absent for long-term keys.
        {"Effect": "Allow", "Action": "iam:ListPolicies", "Resource": "*",
         "Condition": {"Null": {"aws:MultiFactorAuthPresent": "true",
                                "aws:TokenIssueTime": "true"}}},
    )
    iam.list_users()
    message = denied(iam.list_groups)
    assert message.endswith("with an explicit deny in an identity-based policy")
    iam.list_policies(Scope="Local")

    # A session without MFA: IAM refuses it before any policy (AWS-observed, §5.4).
    creds = svc.client("sts", key["AccessKeyId"], key["SecretAccessKey"]).get_session_token(
        DurationSeconds=900
    )["Credentials"]
    session = svc.client(
        "iam", creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]
    )
    with pytest.raises(ClientError) as e:
        session.list_users()
    assert e.value.response["Error"] == {
        "Type": "Sender",
        "Code": "InvalidClientTokenId",
        "Message": "The security token included in the request is invalid",
    }


def test_get_session_token_needs_no_allow_but_honours_a_deny(svc):
    _, key = user_with_policy(
        svc,
        "ctx-login",
        {"Effect": "Allow", "Action": "iam:GetUser", "Resource": "*"},
    )
    sts = svc.client("sts", key["AccessKeyId"], key["SecretAccessKey"])
    sts.get_session_token(DurationSeconds=900)
    svc.root_client("iam").put_user_policy(
        UserName="ctx-login",
        PolicyName="no-sessions",
        PolicyDocument=policy({"Effect": "Deny", "Action": "sts:GetSessionToken",
                               "Resource": "*"}),
    )
    message = denied(sts.get_session_token, DurationSeconds=900)
    assert message == (
        f"User: arn:aws:iam::{ACCOUNT}:user/ctx-login is not authorized to perform: "
        "sts:GetSessionToken on resource: * with an explicit deny in an identity-based policy"
    )
    # GetCallerIdentity is allowed whatever the policies say (policy.md §1.4).
    svc.root_client("iam").put_user_policy(
        UserName="ctx-login",
        PolicyName="no-sts",
        PolicyDocument=policy({"Effect": "Deny", "Action": "sts:*", "Resource": "*"}),
    )
    assert sts.get_caller_identity()["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/ctx-login"


def test_permissions_boundary_key_fences_delegated_admins(svc):
    """iam:PermissionsBoundary: a user admin may attach policies only to users fenced by a
    given boundary, and may set only that boundary (the documented delegation pattern)."""
    root = svc.root_client("iam")
    fence = root.create_policy(
        PolicyName="ctx-fence",
        PolicyDocument=policy({"Effect": "Allow", "Action": "iam:Get*", "Resource": "*"}),
    )["Policy"]["Arn"]
    admin, _ = user_with_policy(
        svc,
        "ctx-user-admin",
        {"Effect": "Allow",
         "Action": ["iam:AttachUserPolicy", "iam:PutUserPermissionsBoundary"],
         "Resource": "*",
         "Condition": {"StringEquals": {"iam:PermissionsBoundary": fence}}},
    )
    root.create_user(UserName="ctx-fenced")
    root.create_user(UserName="ctx-free")
    read_only = "arn:aws:iam::aws:policy/IAMReadOnlyAccess"
    # No boundary yet: refused; setting another boundary: refused; this one: allowed.
    denied(admin.attach_user_policy, UserName="ctx-fenced", PolicyArn=read_only)
    denied(
        admin.put_user_permissions_boundary,
        UserName="ctx-fenced",
        PermissionsBoundary="arn:aws:iam::aws:policy/AdministratorAccess",
    )
    admin.put_user_permissions_boundary(UserName="ctx-fenced", PermissionsBoundary=fence)
    admin.attach_user_policy(UserName="ctx-fenced", PolicyArn=read_only)
    denied(admin.attach_user_policy, UserName="ctx-free", PolicyArn=read_only)
