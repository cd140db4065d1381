"""IAM policies, groups and enforcement, driven through boto3 against the real binary
(issue: Authorization). Every refusal is checked against AWS's AccessDenied text."""

import json

import pyotp
import pytest
from botocore.exceptions import ClientError

from test_foundation import aws_cli
from test_totp import settled_now

ACCOUNT = "000000000000"

# AWS IAM User Guide example "Allows MFA-authenticated IAM users to manage their own MFA
# device" (reference_policies_examples_aws_my-sec-creds-self-manage-mfa-only).
SELF_MANAGE_MFA = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "AllowViewAccountInfo",
            "Effect": "Allow",
            "Action": "iam:ListVirtualMFADevices",
            "Resource": "*",
        },
        {
            "Sid": "AllowManageOwnVirtualMFADevice",
            "Effect": "Allow",
            "Action": ["iam:CreateVirtualMFADevice"],
            "Resource": "arn:aws:iam::*:mfa/*",
        },
        {
            "Sid": "AllowManageOwnUserMFA",
            "Effect": "Allow",
            "Action": [
                "iam:DeactivateMFADevice",
                "iam:EnableMFADevice",
                "iam:GetUser",
                "iam:GetMFADevice",
                "iam:ListMFADevices",
                "iam:ResyncMFADevice",
            ],
            "Resource": "arn:aws:iam::*:user/${aws:username}",
        },
        {
            "Sid": "DenyAllExceptListedIfNoMFA",
            "Effect": "Deny",
            "NotAction": [
                "iam:CreateVirtualMFADevice",
                "iam:EnableMFADevice",
                "iam:GetUser",
                "iam:GetMFADevice",
                "iam:ListMFADevices",
                "iam:ListVirtualMFADevices",
                "iam:ResyncMFADevice",
                "sts:GetSessionToken",
            ],
            "Resource": "*",
            "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}},
        },
    ],
}

ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"
IAM_READ_ONLY = "arn:aws:iam::aws:policy/IAMReadOnlyAccess"


def doc(*statements, version="2012-10-17"):
    return json.dumps({"Version": version, "Statement": list(statements)})


def allow(action, resource="*", **extra):
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action, resource="*", **extra):
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def new_user(svc, name):
    """User `name` with an access key; returns (key id, secret)."""
    iam = svc.root_client("iam")
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def error(excinfo):
    return excinfo.value.response["Error"]


def assert_denied(excinfo, user, action, reason):
    err = error(excinfo)
    assert err["Code"] == "AccessDenied", err
    prefix = f"User: arn:aws:iam::{ACCOUNT}:user/{user} is not authorized to perform: {action}"
    assert err["Message"].startswith(prefix + " on resource: "), err["Message"]
    assert err["Message"].endswith(reason), err["Message"]
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def no_allow(action):
    return f"because no identity-based policy allows the {action} action"


EXPLICIT = "with an explicit deny in an identity-based policy"


def test_self_manage_mfa_policy_on_a_group(svc):
    root = svc.root_client("iam")
    arn = root.create_policy(
        PolicyName="SelfManageMFA", PolicyDocument=json.dumps(SELF_MANAGE_MFA)
    )["Policy"]["Arn"]
    root.create_group(GroupName="mfa-users")
    root.attach_group_policy(GroupName="mfa-users", PolicyArn=arn)
    root.attach_group_policy(GroupName="mfa-users", PolicyArn=IAM_READ_ONLY)
    bob = new_user(svc, "mfa-bob")
    root.add_user_to_group(GroupName="mfa-users", UserName="mfa-bob")
    root.create_user(UserName="mfa-carol")
    carol_device = root.create_virtual_mfa_device(VirtualMFADeviceName="mfa-carol")[
        "VirtualMFADevice"
    ]

    iam = svc.client("iam", *bob)
    # Long-term keys: the listed actions on bob's own user and device work ...
    device = iam.create_virtual_mfa_device(VirtualMFADeviceName="mfa-bob")["VirtualMFADevice"]
    totp = pyotp.TOTP(device["Base32StringSeed"].decode())
    now = settled_now()
    iam.enable_mfa_device(
        UserName="mfa-bob",
        SerialNumber=device["SerialNumber"],
        AuthenticationCode1=totp.at(now - 120),
        AuthenticationCode2=totp.at(now - 90),
    )
    assert iam.get_user()["User"]["UserName"] == "mfa-bob"
    assert [d["SerialNumber"] for d in iam.list_mfa_devices()["MFADevices"]] == [
        device["SerialNumber"]
    ]
    # ... everything else is denied explicitly until bob signs in with MFA,
    with pytest.raises(ClientError) as e:
        iam.list_users()
    assert_denied(e, "mfa-bob", "iam:ListUsers", EXPLICIT)
    # and another user's device is not bob's to manage.
    carol_seed = pyotp.TOTP(carol_device["Base32StringSeed"].decode())
    with pytest.raises(ClientError) as e:
        iam.enable_mfa_device(
            UserName="mfa-carol",
            SerialNumber=carol_device["SerialNumber"],
            AuthenticationCode1=carol_seed.at(now - 120),
            AuthenticationCode2=carol_seed.at(now - 90),
        )
    assert_denied(e, "mfa-bob", "iam:EnableMFADevice", no_allow("iam:EnableMFADevice"))

    # GetSessionToken with a code: the session carries MFA, the deny no longer applies.
    creds = svc.client("sts", *bob).get_session_token(
        SerialNumber=device["SerialNumber"], TokenCode=totp.at(now), DurationSeconds=900
    )["Credentials"]
    session = svc.client(
        "iam", creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]
    )
    names = [u["UserName"] for u in session.list_users()["Users"]]
    assert "mfa-bob" in names and "mfa-carol" in names
    # IAMReadOnlyAccess still grants no writes.
    with pytest.raises(ClientError) as e:
        session.create_user(UserName="not-allowed")
    assert_denied(e, "mfa-bob", "iam:CreateUser", no_allow("iam:CreateUser"))


def test_least_privilege(svc):
    root = svc.root_client("iam")

    # IAMReadOnlyAccess: Get and List, no Create.
    ro = svc.client("iam", *new_user(svc, "lp-reader"))
    root.attach_user_policy(UserName="lp-reader", PolicyArn=IAM_READ_ONLY)
    assert ro.get_user(UserName="lp-reader")["User"]["UserName"] == "lp-reader"
    assert any(u["UserName"] == "lp-reader" for u in ro.list_users()["Users"])
    with pytest.raises(ClientError) as e:
        ro.create_user(UserName="lp-nope")
    assert_denied(e, "lp-reader", "iam:CreateUser", no_allow("iam:CreateUser"))

    # A boundary narrower than AdministratorAccess wins.
    boundary = root.create_policy(
        PolicyName="lp-read-boundary",
        PolicyDocument=doc(allow(["iam:Get*", "iam:List*"])),
    )["Policy"]["Arn"]
    admin = svc.client("iam", *new_user(svc, "lp-bounded"))
    root.attach_user_policy(UserName="lp-bounded", PolicyArn=ADMIN)
    root.put_user_permissions_boundary(UserName="lp-bounded", PermissionsBoundary=boundary)
    user = root.get_user(UserName="lp-bounded")["User"]
    assert user["PermissionsBoundary"] == {
        "PermissionsBoundaryType": "PermissionsBoundaryPolicy",
        "PermissionsBoundaryArn": boundary,
    }
    admin.list_users()
    with pytest.raises(ClientError) as e:
        admin.create_user(UserName="lp-nope")
    assert_denied(
        e,
        "lp-bounded",
        "iam:CreateUser",
        "because no permissions boundary allows the iam:CreateUser action",
    )
    counts = root.get_policy(PolicyArn=boundary)["Policy"]
    assert counts["PermissionsBoundaryUsageCount"] == 1 and counts["AttachmentCount"] == 0
    root.delete_user_permissions_boundary(UserName="lp-bounded")
    admin.create_user(UserName="lp-created-by-admin")

    # An explicit deny in a group policy beats an allow in a user policy.
    dev = svc.client("iam", *new_user(svc, "lp-denied"))
    root.put_user_policy(
        UserName="lp-denied", PolicyName="list", PolicyDocument=doc(allow("iam:ListUsers"))
    )
    dev.list_users()
    root.create_group(GroupName="lp-no-list")
    root.put_group_policy(
        GroupName="lp-no-list", PolicyName="no-list", PolicyDocument=doc(deny("iam:ListUsers"))
    )
    root.add_user_to_group(GroupName="lp-no-list", UserName="lp-denied")
    with pytest.raises(ClientError) as e:
        dev.list_users()
    assert_denied(e, "lp-denied", "iam:ListUsers", EXPLICIT)

    # ${aws:username} scopes a user to their own access keys.
    own = svc.client("iam", *new_user(svc, "lp-self"))
    root.put_user_policy(
        UserName="lp-self",
        PolicyName="own-keys",
        PolicyDocument=doc(
            allow(
                ["iam:ListAccessKeys", "iam:CreateAccessKey", "iam:UpdateAccessKey"],
                "arn:aws:iam::*:user/${aws:username}",
            )
        ),
    )
    assert len(own.list_access_keys()["AccessKeyMetadata"]) == 1
    assert len(own.list_access_keys(UserName="lp-self")["AccessKeyMetadata"]) == 1
    with pytest.raises(ClientError) as e:
        own.list_access_keys(UserName="lp-reader")
    assert_denied(e, "lp-self", "iam:ListAccessKeys", no_allow("iam:ListAccessKeys"))
    with pytest.raises(ClientError) as e:
        own.create_access_key(UserName="lp-reader")
    assert_denied(e, "lp-self", "iam:CreateAccessKey", no_allow("iam:CreateAccessKey"))


def test_changes_apply_on_the_next_request(svc):
    root = svc.root_client("iam")
    key = new_user(svc, "imm-admin")
    iam = svc.client("iam", *key)
    root.attach_user_policy(UserName="imm-admin", PolicyArn=ADMIN)
    iam.list_users()
    root.detach_user_policy(UserName="imm-admin", PolicyArn=ADMIN)
    with pytest.raises(ClientError) as e:
        iam.list_users()
    assert_denied(e, "imm-admin", "iam:ListUsers", no_allow("iam:ListUsers"))
    # Group membership too.
    root.create_group(GroupName="imm-admins")
    root.attach_group_policy(GroupName="imm-admins", PolicyArn=ADMIN)
    root.add_user_to_group(GroupName="imm-admins", UserName="imm-admin")
    iam.list_users()
    root.remove_user_from_group(GroupName="imm-admins", UserName="imm-admin")
    with pytest.raises(ClientError):
        iam.list_users()

    # A deleted user's session credentials are refused at once, and stay refused for a
    # new user of the same name.
    ghost_key = new_user(svc, "imm-ghost")
    creds = svc.client("sts", *ghost_key).get_session_token(DurationSeconds=900)["Credentials"]
    session = svc.client(
        "sts", creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]
    )
    assert session.get_caller_identity()["Arn"].endswith(":user/imm-ghost")
    root.delete_access_key(UserName="imm-ghost", AccessKeyId=ghost_key[0])
    root.delete_user(UserName="imm-ghost")
    with pytest.raises(ClientError) as e:
        session.get_caller_identity()
    assert error(e)["Code"] == "InvalidClientTokenId"
    root.create_user(UserName="imm-ghost")
    with pytest.raises(ClientError) as e:
        session.get_caller_identity()
    assert error(e)["Code"] == "InvalidClientTokenId"


def expect(code, call, *args, **kwargs):
    with pytest.raises(ClientError) as e:
        call(*args, **kwargs)
    err = error(e)
    assert err["Code"] == code, err
    return err["Message"]


def test_groups_round_trip(svc):
    iam = svc.root_client("iam")
    g = iam.create_group(GroupName="rt-devs", Path="/eng/")["Group"]
    assert g["Arn"] == f"arn:aws:iam::{ACCOUNT}:group/eng/rt-devs"
    assert g["GroupId"].startswith("AGPA")
    assert expect("EntityAlreadyExists", iam.create_group, GroupName="RT-DEVS") == (
        "Group with name RT-DEVS already exists."
    )
    iam.create_user(UserName="rt-ann")
    iam.add_user_to_group(GroupName="rt-devs", UserName="rt-ann")
    got = iam.get_group(GroupName="rt-devs")
    assert [u["UserName"] for u in got["Users"]] == ["rt-ann"]
    assert [x["GroupName"] for x in iam.list_groups_for_user(UserName="rt-ann")["Groups"]] == [
        "rt-devs"
    ]
    assert "rt-devs" in [x["GroupName"] for x in iam.list_groups(PathPrefix="/eng/")["Groups"]]
    assert expect("NoSuchEntity", iam.get_group, GroupName="rt-none") == (
        "The group with name rt-none cannot be found."
    )
    assert expect("DeleteConflict", iam.delete_group, GroupName="rt-devs") == (
        "Cannot delete entity, must remove users from group first."
    )
    assert expect("DeleteConflict", iam.delete_user, UserName="rt-ann").startswith(
        "Cannot delete entity"
    )
    iam.update_group(GroupName="rt-devs", NewGroupName="rt-builders", NewPath="/")
    iam.remove_user_from_group(GroupName="rt-builders", UserName="rt-ann")
    iam.put_group_policy(
        GroupName="rt-builders", PolicyName="p", PolicyDocument=doc(allow("iam:Get*"))
    )
    assert expect("DeleteConflict", iam.delete_group, GroupName="rt-builders") == (
        "Cannot delete entity, must delete policies first."
    )
    assert iam.get_group_policy(GroupName="rt-builders", PolicyName="p")["PolicyDocument"] == (
        json.loads(doc(allow("iam:Get*")))
    )
    assert iam.list_group_policies(GroupName="rt-builders")["PolicyNames"] == ["p"]
    iam.delete_group_policy(GroupName="rt-builders", PolicyName="p")
    iam.delete_group(GroupName="rt-builders")
    iam.delete_user(UserName="rt-ann")

    # Ten groups per user.
    iam.create_user(UserName="rt-joiner")
    for i in range(10):
        iam.create_group(GroupName=f"rt-g{i}")
        iam.add_user_to_group(GroupName=f"rt-g{i}", UserName="rt-joiner")
    iam.create_group(GroupName="rt-g10")
    assert expect(
        "LimitExceeded", iam.add_user_to_group, GroupName="rt-g10", UserName="rt-joiner"
    ) == ("Cannot exceed quota for GroupsPerUser: 10")


def test_managed_policies_round_trip(svc):
    iam = svc.root_client("iam")
    v1 = doc(allow("iam:GetUser"))
    p = iam.create_policy(
        PolicyName="rt-policy",
        Path="/team/",
        PolicyDocument=v1,
        Description="round trip",
        Tags=[{"Key": "team", "Value": "platform"}],
    )["Policy"]
    arn = p["Arn"]
    assert arn == f"arn:aws:iam::{ACCOUNT}:policy/team/rt-policy"
    assert p["PolicyId"].startswith("ANPA") and p["DefaultVersionId"] == "v1"
    assert p["AttachmentCount"] == 0 and p["IsAttachable"] is True
    assert expect(
        "EntityAlreadyExists", iam.create_policy, PolicyName="RT-POLICY", PolicyDocument=v1
    ) == ("A policy called RT-POLICY already exists. Duplicate names are not allowed.")
    got = iam.get_policy_version(PolicyArn=arn, VersionId="v1")["PolicyVersion"]
    assert got["Document"] == json.loads(v1) and got["IsDefaultVersion"] is True
    assert iam.list_policy_tags(PolicyArn=arn)["Tags"] == [{"Key": "team", "Value": "platform"}]
    iam.tag_policy(PolicyArn=arn, Tags=[{"Key": "env", "Value": "prod"}])
    iam.untag_policy(PolicyArn=arn, TagKeys=["team"])
    assert iam.list_policy_tags(PolicyArn=arn)["Tags"] == [{"Key": "env", "Value": "prod"}]

    # Five versions at most; ids never come back.
    for i in range(2, 6):
        version = iam.create_policy_version(
            PolicyArn=arn, PolicyDocument=doc(allow(f"iam:List{i}")), SetAsDefault=(i == 5)
        )["PolicyVersion"]
        assert version["VersionId"] == f"v{i}"
    assert expect(
        "LimitExceeded", iam.create_policy_version, PolicyArn=arn, PolicyDocument=v1
    ).startswith("A managed policy can have up to 5 versions.")
    assert iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"] == "v5"
    assert expect("DeleteConflict", iam.delete_policy_version, PolicyArn=arn, VersionId="v5") == (
        "Cannot delete the default version of a policy."
    )
    iam.set_default_policy_version(PolicyArn=arn, VersionId="v2")
    iam.delete_policy_version(PolicyArn=arn, VersionId="v5")
    versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
    assert sorted(v["VersionId"] for v in versions) == ["v1", "v2", "v3", "v4"]
    assert iam.create_policy_version(PolicyArn=arn, PolicyDocument=v1)["PolicyVersion"][
        "VersionId"
    ] == "v6"
    expect("NoSuchEntity", iam.get_policy_version, PolicyArn=arn, VersionId="v5")

    # Attach: counts stay true; the 11th attached policy is over the quota.
    iam.create_user(UserName="rt-attached")
    iam.attach_user_policy(UserName="rt-attached", PolicyArn=arn)
    assert iam.get_policy(PolicyArn=arn)["Policy"]["AttachmentCount"] == 1
    entities = iam.list_entities_for_policy(PolicyArn=arn)
    assert [u["UserName"] for u in entities["PolicyUsers"]] == ["rt-attached"]
    assert expect("DeleteConflict", iam.delete_policy, PolicyArn=arn) == (
        "Cannot delete a policy attached to entities."
    )
    more = [
        iam.create_policy(PolicyName=f"rt-p{i}", PolicyDocument=v1)["Policy"]["Arn"]
        for i in range(10)
    ]
    for extra in more[:9]:
        iam.attach_user_policy(UserName="rt-attached", PolicyArn=extra)
    assert len(iam.list_attached_user_policies(UserName="rt-attached")["AttachedPolicies"]) == 10
    assert expect(
        "LimitExceeded", iam.attach_user_policy, UserName="rt-attached", PolicyArn=more[9]
    ) == ("Cannot exceed quota for PoliciesPerUser: 10")
    assert iam.list_policies(Scope="Local", OnlyAttached=True)["Policies"]
    for a in [arn, *more[:9]]:
        iam.detach_user_policy(UserName="rt-attached", PolicyArn=a)
    expect("NoSuchEntity", iam.detach_user_policy, UserName="rt-attached", PolicyArn=arn)
    assert expect(
        "NoSuchEntity",
        iam.attach_user_policy,
        UserName="rt-attached",
        PolicyArn=f"arn:aws:iam::{ACCOUNT}:policy/missing",
    ) == (f"Policy arn:aws:iam::{ACCOUNT}:policy/missing does not exist or is not attachable.")
    assert expect("DeleteConflict", iam.delete_policy, PolicyArn=arn).startswith(
        "This policy has more than one version."
    )
    for v in ["v1", "v3", "v4", "v6"]:
        iam.delete_policy_version(PolicyArn=arn, VersionId=v)
    iam.delete_policy(PolicyArn=arn)
    assert expect("NoSuchEntity", iam.get_policy, PolicyArn=arn) == f"Policy {arn} was not found."

    # Inline user policies, with the aggregate size quota.
    iam.put_user_policy(UserName="rt-attached", PolicyName="inline", PolicyDocument=v1)
    assert iam.list_user_policies(UserName="rt-attached")["PolicyNames"] == ["inline"]
    assert iam.get_user_policy(UserName="rt-attached", PolicyName="inline")[
        "PolicyDocument"
    ] == json.loads(v1)
    big = doc(allow([f"iam:Get{'X' * 40}{i}" for i in range(40)]))
    assert expect(
        "LimitExceeded", iam.put_user_policy, UserName="rt-attached", PolicyName="big",
        PolicyDocument=big,
    ) == ("Maximum policy size of 2048 bytes exceeded for user rt-attached")
    assert expect("DeleteConflict", iam.delete_user, UserName="rt-attached") == (
        "Cannot delete entity, must delete policies first."
    )
    iam.delete_user_policy(UserName="rt-attached", PolicyName="inline")
    assert expect(
        "NoSuchEntity", iam.get_user_policy, UserName="rt-attached", PolicyName="inline"
    ) == ("The user policy with name inline cannot be found.")
    iam.delete_user(UserName="rt-attached")


def test_user_tags_round_trip(svc):
    iam = svc.root_client("iam")
    iam.create_user(UserName="rt-tagged")
    iam.tag_user(UserName="rt-tagged", Tags=[{"Key": "team", "Value": "a"}])
    iam.tag_user(UserName="rt-tagged", Tags=[{"Key": "cost", "Value": ""}])
    tags = iam.list_user_tags(UserName="rt-tagged")["Tags"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("cost", ""), ("team", "a")]
    iam.untag_user(UserName="rt-tagged", TagKeys=["cost"])
    assert iam.get_user(UserName="rt-tagged")["User"]["Tags"] == [{"Key": "team", "Value": "a"}]
    over = [{"Key": f"k{i}", "Value": "v"} for i in range(50)]
    expect("LimitExceeded", iam.tag_user, UserName="rt-tagged", Tags=over)
    iam.delete_user(UserName="rt-tagged")


def test_aws_managed_policies_are_listed_and_read_only(svc):
    iam = svc.root_client("iam")
    names = [p["PolicyName"] for p in iam.list_policies(Scope="AWS", MaxItems=1000)["Policies"]]
    for name in ["AdministratorAccess", "PowerUserAccess", "ReadOnlyAccess", "IAMFullAccess",
                 "IAMReadOnlyAccess", "IAMUserChangePassword"]:
        assert name in names
    v = iam.get_policy_version(PolicyArn=ADMIN, VersionId="v1")["PolicyVersion"]
    assert v["Document"] == {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    }
    expect("UnmodifiableEntity", iam.delete_policy, PolicyArn=ADMIN)
    expect("UnmodifiableEntity", iam.create_policy_version, PolicyArn=ADMIN, PolicyDocument=doc(
        allow("*")))


@pytest.mark.parametrize(
    "document,message",
    [
        ("not json", "Syntax errors in policy."),
        (json.dumps({"Statement": [allow("iam:GetUser")]}),
         "Policy document must be version 2012-10-17 or greater."),
        (doc({"Action": "iam:GetUser", "Resource": "*"}), "Syntax errors in policy."),
        (doc({"Effect": "allow", "Action": "iam:GetUser", "Resource": "*"}),
         "The policy failed legacy parsing"),
        (doc({"Effect": "Allow", "Resource": "*"}), "Policy statement must contain actions."),
        (doc({"Effect": "Allow", "Action": "iam:GetUser"}),
         "Policy statement must contain resources."),
        (doc(allow("GetUser")),
         "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."),
        (doc(allow("iam:GetUser", "not-an-arn")),
         'Resource not-an-arn must be in ARN format or "*".'),
        (doc({**allow("iam:GetUser"), "Principal": "*"}),
         "Policy document should not specify a principal."),
        (doc({**allow("iam:GetUser"), "Sid": "a"}, {**allow("iam:GetUser"), "Sid": "a"}),
         "Statement IDs (SID) in a single policy must be unique."),
        (doc(allow("iam:GetUser", Condition={"StringEqualz": {"aws:username": "x"}})),
         "Syntax errors in policy."),
    ],
)
def test_malformed_policy_documents(svc, document, message):
    iam = svc.root_client("iam")
    got = expect("MalformedPolicyDocument", iam.create_policy, PolicyName="bad",
                 PolicyDocument=document)
    assert got == message


def test_simulator_answers_the_decision_matrix(svc):
    iam = svc.root_client("iam")
    allow_all = doc(allow("iam:*"))
    deny_delete = doc(deny("iam:DeleteUser"))
    r = iam.simulate_custom_policy(
        PolicyInputList=[allow_all, deny_delete],
        ActionNames=["iam:GetUser", "iam:DeleteUser", "sts:GetSessionToken"],
    )["EvaluationResults"]
    decisions = {x["EvalActionName"]: x["EvalDecision"] for x in r}
    assert decisions == {
        "iam:GetUser": "allowed",
        "iam:DeleteUser": "explicitDeny",
        "sts:GetSessionToken": "implicitDeny",
    }
    deny_result = next(x for x in r if x["EvalActionName"] == "iam:DeleteUser")
    assert [m["SourcePolicyId"] for m in deny_result["MatchedStatements"]] == ["PolicyInputList.2"]

    # A boundary intersects.
    r = iam.simulate_custom_policy(
        PolicyInputList=[allow_all],
        PermissionsBoundaryPolicyInputList=[doc(allow("iam:Get*"))],
        ActionNames=["iam:GetUser", "iam:CreateUser"],
    )["EvaluationResults"]
    by_action = {x["EvalActionName"]: x for x in r}
    assert by_action["iam:GetUser"]["EvalDecision"] == "allowed"
    assert by_action["iam:CreateUser"]["EvalDecision"] == "implicitDeny"
    assert by_action["iam:CreateUser"]["PermissionsBoundaryDecisionDetail"] == {
        "AllowedByPermissionsBoundary": False
    }

    # Missing context keys are reported; given ones decide.
    scoped = doc(allow("iam:GetUser", "arn:aws:iam::*:user/${aws:username}"))
    user_arn = f"arn:aws:iam::{ACCOUNT}:user/sim-amy"
    r = iam.simulate_custom_policy(
        PolicyInputList=[scoped], ActionNames=["iam:GetUser"], ResourceArns=[user_arn]
    )["EvaluationResults"][0]
    assert r["EvalDecision"] == "implicitDeny"
    assert r["MissingContextValues"] == ["aws:username"]
    r = iam.simulate_custom_policy(
        PolicyInputList=[scoped],
        ActionNames=["iam:GetUser"],
        ResourceArns=[user_arn],
        ContextEntries=[
            {"ContextKeyName": "aws:username", "ContextKeyValues": ["sim-amy"],
             "ContextKeyType": "string"}
        ],
    )["EvaluationResults"][0]
    assert r["EvalDecision"] == "allowed"
    mfa = doc(allow("iam:*", Condition={"Bool": {"aws:MultiFactorAuthPresent": "true"}}))
    keys = iam.get_context_keys_for_custom_policy(PolicyInputList=[mfa, scoped])
    assert keys["ContextKeyNames"] == ["aws:MultiFactorAuthPresent", "aws:username"]

    # The principal simulator reads what enforcement reads.
    iam.create_user(UserName="sim-amy")
    iam.attach_user_policy(UserName="sim-amy", PolicyArn=IAM_READ_ONLY)
    iam.create_group(GroupName="sim-deny")
    iam.put_group_policy(GroupName="sim-deny", PolicyName="d",
                         PolicyDocument=doc(deny("iam:ListUsers")))
    iam.add_user_to_group(GroupName="sim-deny", UserName="sim-amy")
    r = iam.simulate_principal_policy(
        PolicySourceArn=user_arn, ActionNames=["iam:GetUser", "iam:ListUsers", "iam:CreateUser"]
    )["EvaluationResults"]
    assert {x["EvalActionName"]: x["EvalDecision"] for x in r} == {
        "iam:GetUser": "allowed",
        "iam:ListUsers": "explicitDeny",
        "iam:CreateUser": "implicitDeny",
    }
    expect("NoSuchEntity", iam.simulate_principal_policy,
           PolicySourceArn=f"arn:aws:iam::{ACCOUNT}:user/sim-nobody", ActionNames=["iam:GetUser"])


def test_aws_cli_manages_policies_and_sees_them_enforced(svc, tmp_path):
    """The same workflow through the AWS CLI (awscli 1.x over botocore): file:// documents,
    decoded documents on the way back, the simulator's CLI form, and an AccessDenied."""
    document = tmp_path / "read-users.json"
    document.write_text(doc(allow(["iam:GetUser", "iam:ListUsers"])))
    out = aws_cli(
        svc, "iam", "create-policy", "--policy-name", "cli-read-users",
        "--policy-document", f"file://{document}",
    )
    assert out.returncode == 0, out.stderr
    arn = json.loads(out.stdout)["Policy"]["Arn"]
    out = aws_cli(svc, "iam", "get-policy-version", "--policy-arn", arn, "--version-id", "v1")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["PolicyVersion"]["Document"] == json.loads(
        document.read_text()
    )
    assert aws_cli(svc, "iam", "create-user", "--user-name", "cli-fay").returncode == 0
    out = aws_cli(svc, "iam", "attach-user-policy", "--user-name", "cli-fay",
                  "--policy-arn", arn)
    assert out.returncode == 0, out.stderr
    out = aws_cli(svc, "iam", "create-access-key", "--user-name", "cli-fay")
    key = json.loads(out.stdout)["AccessKey"]
    fay = (key["AccessKeyId"], key["SecretAccessKey"])
    out = aws_cli(svc, "iam", "list-users", key=fay)
    assert out.returncode == 0, out.stderr
    assert "cli-fay" in [u["UserName"] for u in json.loads(out.stdout)["Users"]]
    out = aws_cli(svc, "iam", "create-group", "--group-name", "cli-nope", key=fay)
    assert out.returncode != 0
    assert (
        "An error occurred (AccessDenied) when calling the CreateGroup operation: User: "
        f"arn:aws:iam::{ACCOUNT}:user/cli-fay is not authorized to perform: iam:CreateGroup"
    ) in out.stderr
    out = aws_cli(
        svc, "iam", "simulate-principal-policy",
        "--policy-source-arn", f"arn:aws:iam::{ACCOUNT}:user/cli-fay",
        "--action-names", "iam:ListUsers", "iam:DeleteUser",
        "--context-entries",
        "ContextKeyName='aws:CurrentTime',ContextKeyValues='2019-04-25T11:00:00Z',"
        "ContextKeyType=date",
    )
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)["EvaluationResults"]
    assert {r["EvalActionName"]: r["EvalDecision"] for r in results} == {
        "iam:ListUsers": "allowed",
        "iam:DeleteUser": "implicitDeny",
    }
