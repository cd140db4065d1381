"""IAM roles round-tripped through boto3 against the real binary (policy.md §4.5, §4.6):
CreateRole, GetRole, ListRoles, UpdateRole, UpdateRoleDescription, UpdateAssumeRolePolicy,
DeleteRole, the role policy actions, role permissions boundaries and role tags — success
shapes and AWS's error codes and texts (§4.9). Assuming a role is not here yet.

Texts policy.md quotes are asserted verbatim. Where AWS publishes no text, the test pins
tokengate's own answer and says so in a comment ("tokengate's text")."""

import json

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from test_iam_entities import expect_status, paginate, policy_arn, validation
from test_policies import ACCOUNT, allow, assert_denied, doc, new_user, no_allow

ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"
IAM_READ_ONLY = "arn:aws:iam::aws:policy/IAMReadOnlyAccess"
READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"
ROOT_PRINCIPAL = f"arn:aws:iam::{ACCOUNT}:root"


def trust(*principals, **extra):
    """A trust policy letting `principals` (AWS) assume the role."""
    statement = {
        "Effect": "Allow",
        "Principal": {"AWS": list(principals) or ROOT_PRINCIPAL},
        "Action": "sts:AssumeRole",
        **extra,
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def role_arn(name, path="/"):
    return f"arn:aws:iam::{ACCOUNT}:role{path}{name}"


def unchecked_root(svc):
    """A root IAM client that sends what botocore would refuse, to see the server's answer."""
    return boto3.client(
        "iam",
        endpoint_url=svc.url,
        region_name="us-east-1",
        aws_access_key_id=svc.root["AccessKeyId"],
        aws_secret_access_key=svc.root["SecretAccessKey"],
        config=Config(retries={"max_attempts": 1}, parameter_validation=False),
    )


def expect(code, message, call, *args, **kwargs):
    status = {
        "NoSuchEntity": 404,
        "EntityAlreadyExists": 409,
        "LimitExceeded": 409,
        "DeleteConflict": 409,
        "MalformedPolicyDocument": 400,
        "InvalidInput": 400,
        "ValidationError": 400,
    }[code]
    got = expect_status(code, status, call, *args, **kwargs)
    if message is not None:
        assert got == message, got
    return got


# --- CreateRole / GetRole / ListRoles ----------------------------------------------------


def test_create_get_list_shapes(svc):
    iam = svc.root_client("iam")
    document = trust(ROOT_PRINCIPAL)
    r = iam.create_role(
        RoleName="rl-shape",
        Path="/rl/shape/",
        AssumeRolePolicyDocument=document,
        Description="deploys things",
        MaxSessionDuration=7200,
        Tags=[{"Key": "team", "Value": "ops"}, {"Key": "Env", "Value": ""}],
    )["Role"]
    assert r["RoleName"] == "rl-shape" and r["Path"] == "/rl/shape/"
    assert r["Arn"] == role_arn("rl-shape", "/rl/shape/")
    assert r["RoleId"].startswith("AROA") and len(r["RoleId"]) == 21
    # botocore URL-decodes and parses the document (policy.md §4.1).
    assert r["AssumeRolePolicyDocument"] == json.loads(document)
    assert r["Description"] == "deploys things"
    assert r["MaxSessionDuration"] == 7200
    assert r["Tags"] == [{"Key": "Env", "Value": ""}, {"Key": "team", "Value": "ops"}]
    assert r["RoleLastUsed"] == {}
    assert "PermissionsBoundary" not in r
    got = iam.get_role(RoleName="RL-SHAPE")["Role"]
    assert got["RoleId"] == r["RoleId"] and got["CreateDate"] == r["CreateDate"]
    assert got["Tags"] == r["Tags"] and got["RoleLastUsed"] == {}

    iam.create_role(RoleName="rl-plain", AssumeRolePolicyDocument=trust())
    plain = iam.get_role(RoleName="rl-plain")["Role"]
    assert plain["Path"] == "/" and plain["MaxSessionDuration"] == 3600
    assert "Description" not in plain and "Tags" not in plain

    listed = iam.list_roles(PathPrefix="/rl/")["Roles"]
    assert [x["RoleName"] for x in listed] == ["rl-shape"]
    assert listed[0]["AssumeRolePolicyDocument"] == json.loads(document)
    all_roles, _ = paginate(iam.list_roles, "Roles")
    assert {"rl-shape", "rl-plain"} <= {x["RoleName"] for x in all_roles}
    _, pages = paginate(iam.list_roles, "Roles", MaxItems=1)
    assert pages == len(all_roles)


def test_create_role_errors(svc):
    iam = unchecked_root(svc)
    iam.create_role(RoleName="rl-dup", AssumeRolePolicyDocument=trust())
    expect(
        "EntityAlreadyExists",
        "Role with name RL-DUP already exists.",
        iam.create_role,
        RoleName="RL-DUP",
        AssumeRolePolicyDocument=trust(),
    )
    expect(
        "ValidationError",
        validation("x" * 65, "roleName", "have length less than or equal to 64"),
        iam.create_role,
        RoleName="x" * 65,
        AssumeRolePolicyDocument=trust(),
    )
    for bad, constraint in [
        (3599, "have value greater than or equal to 3600"),
        (43201, "have value less than or equal to 43200"),
    ]:
        expect(
            "ValidationError",
            validation(bad, "maxSessionDuration", constraint),
            iam.create_role,
            RoleName="rl-duration",
            AssumeRolePolicyDocument=trust(),
            MaxSessionDuration=bad,
        )
    expect(
        "ValidationError",
        validation("d" * 1001, "description", "have length less than or equal to 1000"),
        iam.create_role,
        RoleName="rl-desc",
        AssumeRolePolicyDocument=trust(),
        Description="d" * 1001,
    )
    # Tags: at most 50, or nothing is created.
    expect(
        "ValidationError",
        None,
        iam.create_role,
        RoleName="rl-tags",
        AssumeRolePolicyDocument=trust(),
        Tags=[{"Key": f"k{i}", "Value": ""} for i in range(51)],
    )
    expect("NoSuchEntity", None, iam.get_role, RoleName="rl-tags")


def test_trust_policy_validation(svc):
    iam = svc.root_client("iam")
    no_principal = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole"}],
        }
    )
    expect(
        "MalformedPolicyDocument",
        "Invalid principal in policy: com.amazon.balsa.error.InvalidPolicyException: "
        "The passed in policy has a statement with no principals!",
        iam.create_role,
        RoleName="rl-trust",
        AssumeRolePolicyDocument=no_principal,
    )
    with_resource = trust(ROOT_PRINCIPAL, Resource="*")
    expect(
        "MalformedPolicyDocument",
        "Has prohibited field Resource",
        iam.create_role,
        RoleName="rl-trust",
        AssumeRolePolicyDocument=with_resource,
    )
    ghost = f"arn:aws:iam::{ACCOUNT}:user/rl-ghost"
    expect(
        "MalformedPolicyDocument",
        f'Invalid principal in policy: "AWS":"{ghost}"',
        iam.create_role,
        RoleName="rl-trust",
        AssumeRolePolicyDocument=trust(ghost),
    )
    ghost_role = f"arn:aws:iam::{ACCOUNT}:role/rl-ghost-role"
    expect(
        "MalformedPolicyDocument",
        f'Invalid principal in policy: "AWS":"{ghost_role}"',
        iam.create_role,
        RoleName="rl-trust",
        AssumeRolePolicyDocument=trust(ghost_role),
    )
    # The trust policy's own quota (ACLSizePerRole, 2048 non-white-space characters).
    big = trust(ROOT_PRINCIPAL, Condition={"StringEquals": {"sts:ExternalId": "x" * 2100}})
    expect(
        "LimitExceeded",
        "Cannot exceed quota for ACLSizePerRole: 2048",
        iam.create_role,
        RoleName="rl-trust",
        AssumeRolePolicyDocument=big,
    )
    expect("NoSuchEntity", None, iam.get_role, RoleName="rl-trust")
    # Existing principals of the account, the account itself and other accounts are fine.
    iam.create_user(UserName="rl-truster", Path="/t/")
    iam.create_role(
        RoleName="rl-trust",
        AssumeRolePolicyDocument=trust(
            f"arn:aws:iam::{ACCOUNT}:user/t/rl-truster",
            ACCOUNT,
            "arn:aws:iam::111122223333:root",
        ),
    )
    # A role may trust another role that exists.
    iam.create_role(
        RoleName="rl-trust-2",
        AssumeRolePolicyDocument=trust(role_arn("rl-trust")),
    )


def test_update_role_and_description(svc):
    iam = unchecked_root(svc)
    iam.create_role(RoleName="rl-upd", AssumeRolePolicyDocument=trust(), Description="old")
    assert iam.update_role(RoleName="rl-upd", MaxSessionDuration=43200)
    r = iam.get_role(RoleName="rl-upd")["Role"]
    assert r["MaxSessionDuration"] == 43200 and r["Description"] == "old"
    iam.update_role(RoleName="rl-upd", Description="new")
    r = iam.get_role(RoleName="rl-upd")["Role"]
    assert r["MaxSessionDuration"] == 43200 and r["Description"] == "new"
    got = iam.update_role_description(RoleName="rl-upd", Description="newer")["Role"]
    assert got["RoleName"] == "rl-upd" and got["Description"] == "newer"
    expect(
        "NoSuchEntity",
        "The role with name rl-nobody cannot be found.",
        iam.update_role,
        RoleName="rl-nobody",
        Description="x",
    )
    expect(
        "NoSuchEntity",
        "The role with name rl-nobody cannot be found.",
        iam.update_role_description,
        RoleName="rl-nobody",
        Description="x",
    )
    expect("ValidationError", None, iam.update_role, RoleName="rl-upd", MaxSessionDuration=60)


def test_update_assume_role_policy(svc):
    iam = svc.root_client("iam")
    iam.create_role(RoleName="rl-arp", AssumeRolePolicyDocument=trust())
    iam.create_user(UserName="rl-arp-user")
    new = trust(f"arn:aws:iam::{ACCOUNT}:user/rl-arp-user")
    iam.update_assume_role_policy(RoleName="rl-arp", PolicyDocument=new)
    got = iam.get_role(RoleName="rl-arp")["Role"]["AssumeRolePolicyDocument"]
    assert got == json.loads(new)
    ghost = f"arn:aws:iam::{ACCOUNT}:user/rl-arp-ghost"
    expect(
        "MalformedPolicyDocument",
        f'Invalid principal in policy: "AWS":"{ghost}"',
        iam.update_assume_role_policy,
        RoleName="rl-arp",
        PolicyDocument=trust(ghost),
    )
    expect(
        "MalformedPolicyDocument",
        "Has prohibited field Resource",
        iam.update_assume_role_policy,
        RoleName="rl-arp",
        PolicyDocument=trust(ROOT_PRINCIPAL, Resource="*"),
    )
    expect(
        "NoSuchEntity",
        "The role with name rl-nobody cannot be found.",
        iam.update_assume_role_policy,
        RoleName="rl-nobody",
        PolicyDocument=trust(),
    )
    # The document did not change on failure.
    got = iam.get_role(RoleName="rl-arp")["Role"]["AssumeRolePolicyDocument"]
    assert got == json.loads(new)


# --- Role policies (§4.4) ----------------------------------------------------------------


def test_attached_role_policies_and_quota(svc):
    iam = svc.root_client("iam")
    iam.create_role(RoleName="rl-att", AssumeRolePolicyDocument=trust())
    arn = iam.create_policy(PolicyName="rl-att-p", PolicyDocument=doc(allow("iam:Get*")))[
        "Policy"
    ]["Arn"]
    iam.attach_role_policy(RoleName="rl-att", PolicyArn=arn)
    iam.attach_role_policy(RoleName="RL-ATT", PolicyArn=READ_ONLY)
    iam.attach_role_policy(RoleName="rl-att", PolicyArn=READ_ONLY)  # idempotent
    attached = iam.list_attached_role_policies(RoleName="rl-att")["AttachedPolicies"]
    assert {(a["PolicyName"], a["PolicyArn"]) for a in attached} == {
        ("rl-att-p", arn),
        ("ReadOnlyAccess", READ_ONLY),
    }
    assert iam.get_policy(PolicyArn=arn)["Policy"]["AttachmentCount"] == 1
    entities = iam.list_entities_for_policy(PolicyArn=arn)
    assert entities["PolicyRoles"] == [
        {"RoleName": "rl-att", "RoleId": iam.get_role(RoleName="rl-att")["Role"]["RoleId"]}
    ]
    assert entities["PolicyUsers"] == [] and entities["PolicyGroups"] == []
    only_roles = iam.list_entities_for_policy(PolicyArn=arn, EntityFilter="Role")
    assert len(only_roles["PolicyRoles"]) == 1
    only_users = iam.list_entities_for_policy(PolicyArn=arn, EntityFilter="User")
    assert only_users["PolicyRoles"] == []
    expect(
        "DeleteConflict",
        "Cannot delete a policy attached to entities.",
        iam.delete_policy,
        PolicyArn=arn,
    )
    expect(
        "NoSuchEntity",
        "The role with name rl-nobody cannot be found.",
        iam.attach_role_policy,
        RoleName="rl-nobody",
        PolicyArn=READ_ONLY,
    )
    missing = policy_arn("rl-missing")
    expect(
        "NoSuchEntity",
        f"Policy {missing} does not exist or is not attachable.",
        iam.attach_role_policy,
        RoleName="rl-att",
        PolicyArn=missing,
    )
    for i in range(8):
        p = iam.create_policy(PolicyName=f"rl-q{i}", PolicyDocument=doc(allow("iam:Get*")))
        iam.attach_role_policy(RoleName="rl-att", PolicyArn=p["Policy"]["Arn"])
    p = iam.create_policy(PolicyName="rl-q-over", PolicyDocument=doc(allow("iam:Get*")))
    expect(
        "LimitExceeded",
        "Cannot exceed quota for PoliciesPerRole: 10",
        iam.attach_role_policy,
        RoleName="rl-att",
        PolicyArn=p["Policy"]["Arn"],
    )
    iam.detach_role_policy(RoleName="rl-att", PolicyArn=READ_ONLY)
    expect(
        "NoSuchEntity",
        None,
        iam.detach_role_policy,
        RoleName="rl-att",
        PolicyArn=READ_ONLY,
    )
    expect(
        "NoSuchEntity",
        "The role with name rl-nobody cannot be found.",
        iam.list_attached_role_policies,
        RoleName="rl-nobody",
    )


def test_inline_role_policies_and_size(svc):
    iam = svc.root_client("iam")
    iam.create_role(RoleName="rl-inl", AssumeRolePolicyDocument=trust())
    document = doc(allow("iam:Get*"))
    iam.put_role_policy(RoleName="rl-inl", PolicyName="reads", PolicyDocument=document)
    got = iam.get_role_policy(RoleName="rl-inl", PolicyName="READS")
    assert got["RoleName"] == "rl-inl" and got["PolicyName"] == "READS"
    assert got["PolicyDocument"] == json.loads(document)
    assert iam.list_role_policies(RoleName="rl-inl")["PolicyNames"] == ["reads"]
    expect(
        "NoSuchEntity",
        "The role policy with name nope cannot be found.",
        iam.get_role_policy,
        RoleName="rl-inl",
        PolicyName="nope",
    )
    expect(
        "NoSuchEntity",
        "The role policy with name nope cannot be found.",
        iam.delete_role_policy,
        RoleName="rl-inl",
        PolicyName="nope",
    )
    expect(
        "NoSuchEntity",
        "The role with name rl-nobody cannot be found.",
        iam.list_role_policies,
        RoleName="rl-nobody",
    )
    expect(
        "MalformedPolicyDocument",
        "Policy document should not specify a principal.",
        iam.put_role_policy,
        RoleName="rl-inl",
        PolicyName="p",
        PolicyDocument=doc(allow("iam:Get*", Principal="*")),
    )
    # The aggregate of a role's inline policies: 10,240 non-white-space characters.
    big = doc(allow(["iam:Get" + "X" * 5000, "iam:List" + "Y" * 5000]))
    expect(
        "LimitExceeded",
        "Maximum policy size of 10240 bytes exceeded for role rl-inl",
        iam.put_role_policy,
        RoleName="rl-inl",
        PolicyName="big",
        PolicyDocument=doc(allow(["iam:Get" + "X" * 10300])),
    )
    iam.put_role_policy(RoleName="rl-inl", PolicyName="big", PolicyDocument=big)
    iam.delete_role_policy(RoleName="rl-inl", PolicyName="big")
    iam.delete_role_policy(RoleName="rl-inl", PolicyName="reads")
    assert iam.list_role_policies(RoleName="rl-inl")["PolicyNames"] == []


def test_delete_role_conflicts(svc):
    iam = svc.root_client("iam")
    iam.create_role(
        RoleName="rl-del",
        AssumeRolePolicyDocument=trust(),
        Tags=[{"Key": "k", "Value": "v"}],
        PermissionsBoundary=READ_ONLY,
    )
    iam.put_role_policy(RoleName="rl-del", PolicyName="p", PolicyDocument=doc(allow("iam:*")))
    iam.attach_role_policy(RoleName="rl-del", PolicyArn=ADMIN)
    expect(
        "DeleteConflict",
        "Cannot delete entity, must delete policies first.",
        iam.delete_role,
        RoleName="rl-del",
    )
    iam.delete_role_policy(RoleName="rl-del", PolicyName="p")
    expect(
        "DeleteConflict",
        "Cannot delete entity, must detach all policies first.",
        iam.delete_role,
        RoleName="rl-del",
    )
    iam.detach_role_policy(RoleName="rl-del", PolicyArn=ADMIN)
    iam.delete_role(RoleName="rl-del")
    expect(
        "NoSuchEntity",
        "The role with name rl-del cannot be found.",
        iam.get_role,
        RoleName="rl-del",
    )
    expect(
        "NoSuchEntity",
        "The role with name rl-del cannot be found.",
        iam.delete_role,
        RoleName="rl-del",
    )
    # Tags and the boundary went with it.
    iam.create_role(RoleName="rl-del", AssumeRolePolicyDocument=trust())
    r = iam.get_role(RoleName="rl-del")["Role"]
    assert "Tags" not in r and "PermissionsBoundary" not in r


# --- Boundaries and tags (§4.6) ----------------------------------------------------------


def test_role_permissions_boundary(svc):
    iam = svc.root_client("iam")
    fence = iam.create_policy(PolicyName="rl-fence", PolicyDocument=doc(allow("iam:Get*")))[
        "Policy"
    ]["Arn"]
    r = iam.create_role(
        RoleName="rl-bnd", AssumeRolePolicyDocument=trust(), PermissionsBoundary=fence
    )["Role"]
    assert r["PermissionsBoundary"] == {
        "PermissionsBoundaryType": "PermissionsBoundaryPolicy",
        "PermissionsBoundaryArn": fence,
    }
    assert iam.get_policy(PolicyArn=fence)["Policy"]["PermissionsBoundaryUsageCount"] == 1
    used = iam.list_entities_for_policy(PolicyArn=fence, PolicyUsageFilter="PermissionsBoundary")
    assert [x["RoleName"] for x in used["PolicyRoles"]] == ["rl-bnd"]
    expect(
        "DeleteConflict",
        "Cannot delete a policy attached to entities.",
        iam.delete_policy,
        PolicyArn=fence,
    )
    iam.put_role_permissions_boundary(RoleName="rl-bnd", PermissionsBoundary=READ_ONLY)
    got = iam.get_role(RoleName="rl-bnd")["Role"]["PermissionsBoundary"]
    assert got["PermissionsBoundaryArn"] == READ_ONLY
    assert iam.get_policy(PolicyArn=fence)["Policy"]["PermissionsBoundaryUsageCount"] == 0
    iam.delete_role_permissions_boundary(RoleName="rl-bnd")
    iam.delete_role_permissions_boundary(RoleName="rl-bnd")  # idempotent, as AWS
    assert "PermissionsBoundary" not in iam.get_role(RoleName="rl-bnd")["Role"]
    missing = policy_arn("rl-no-fence")
    for call in [
        lambda: iam.put_role_permissions_boundary(
            RoleName="rl-bnd", PermissionsBoundary=missing
        ),
        lambda: iam.create_role(
            RoleName="rl-bnd-2", AssumeRolePolicyDocument=trust(), PermissionsBoundary=missing
        ),
    ]:
        expect(
            "NoSuchEntity",
            f"Policy {missing} does not exist or is not attachable.",
            call,
        )
    expect("NoSuchEntity", None, iam.get_role, RoleName="rl-bnd-2")
    expect(
        "NoSuchEntity",
        "The role with name rl-nobody cannot be found.",
        iam.put_role_permissions_boundary,
        RoleName="rl-nobody",
        PermissionsBoundary=READ_ONLY,
    )
    expect(
        "NoSuchEntity",
        "The role with name rl-nobody cannot be found.",
        iam.delete_role_permissions_boundary,
        RoleName="rl-nobody",
    )


def test_role_tags(svc):
    iam = svc.root_client("iam")
    iam.create_role(RoleName="rl-tag", AssumeRolePolicyDocument=trust())
    iam.tag_role(RoleName="rl-tag", Tags=[{"Key": "b", "Value": "1"}, {"Key": "a", "Value": ""}])
    iam.tag_role(RoleName="rl-tag", Tags=[{"Key": "B", "Value": "2"}])
    assert iam.list_role_tags(RoleName="rl-tag")["Tags"] == [
        {"Key": "a", "Value": ""},
        {"Key": "B", "Value": "2"},
    ]
    iam.untag_role(RoleName="rl-tag", TagKeys=["a", "absent"])
    assert iam.list_role_tags(RoleName="rl-tag")["Tags"] == [{"Key": "B", "Value": "2"}]
    iam.tag_role(RoleName="rl-tag", Tags=[{"Key": f"k{i}", "Value": ""} for i in range(49)])
    # tokengate's text (AWS's TagsPerUser form, for roles).
    expect(
        "LimitExceeded",
        "Cannot exceed quota for TagsPerRole: 50",
        iam.tag_role,
        RoleName="rl-tag",
        Tags=[{"Key": "one-too-many", "Value": ""}],
    )
    tags, pages = paginate(iam.list_role_tags, "Tags", RoleName="rl-tag", MaxItems=20)
    assert len(tags) == 50 and pages == 3
    for call in [
        lambda: iam.tag_role(RoleName="rl-nobody", Tags=[{"Key": "k", "Value": ""}]),
        lambda: iam.untag_role(RoleName="rl-nobody", TagKeys=["k"]),
        lambda: iam.list_role_tags(RoleName="rl-nobody"),
    ]:
        expect("NoSuchEntity", "The role with name rl-nobody cannot be found.", call)


# --- Authorization ------------------------------------------------------------------------


def test_iam_read_only_user_reads_roles_but_cannot_create(svc):
    root = svc.root_client("iam")
    root.create_role(RoleName="rl-seen", Path="/seen/", AssumeRolePolicyDocument=trust())
    reader = svc.client("iam", *new_user(svc, "rl-reader"))
    root.attach_user_policy(UserName="rl-reader", PolicyArn=IAM_READ_ONLY)
    assert reader.get_role(RoleName="rl-seen")["Role"]["Arn"] == role_arn("rl-seen", "/seen/")
    assert any(r["RoleName"] == "rl-seen" for r in reader.list_roles()["Roles"])
    assert reader.list_role_tags(RoleName="rl-seen")["Tags"] == []
    with pytest.raises(ClientError) as e:
        reader.create_role(RoleName="rl-not-allowed", AssumeRolePolicyDocument=trust())
    assert_denied(e, "rl-reader", "iam:CreateRole", no_allow("iam:CreateRole"))
    assert "on resource: " + role_arn("rl-not-allowed") in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        reader.attach_role_policy(RoleName="rl-seen", PolicyArn=ADMIN)
    assert_denied(e, "rl-reader", "iam:AttachRolePolicy", no_allow("iam:AttachRolePolicy"))
    assert "on resource: " + role_arn("rl-seen", "/seen/") in e.value.response["Error"]["Message"]


def test_role_boundary_condition_key(svc):
    """iam:PermissionsBoundary: an administrator may manage only roles fenced by a given
    boundary, and create roles only with it."""
    root = svc.root_client("iam")
    fence = root.create_policy(
        PolicyName="rl-admin-fence", PolicyDocument=doc(allow("iam:Get*"))
    )["Policy"]["Arn"]
    condition = {"StringEquals": {"iam:PermissionsBoundary": fence}}
    policy = doc(
        allow(
            ["iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy"],
            Condition=condition,
        ),
        allow(["iam:GetRole", "iam:ListRoles"]),
    )
    admin = svc.client("iam", *new_user(svc, "rl-fenced-admin"))
    root.put_user_policy(UserName="rl-fenced-admin", PolicyName="p", PolicyDocument=policy)
    admin.create_role(
        RoleName="rl-fenced", AssumeRolePolicyDocument=trust(), PermissionsBoundary=fence
    )
    admin.put_role_policy(
        RoleName="rl-fenced", PolicyName="p", PolicyDocument=doc(allow("iam:Get*"))
    )
    with pytest.raises(ClientError) as e:
        admin.create_role(RoleName="rl-unfenced", AssumeRolePolicyDocument=trust())
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    root.create_role(RoleName="rl-unfenced", AssumeRolePolicyDocument=trust())
    with pytest.raises(ClientError) as e:
        admin.attach_role_policy(RoleName="rl-unfenced", PolicyArn=ADMIN)
    assert e.value.response["Error"]["Code"] == "AccessDenied"


def test_the_principal_simulator_reads_a_roles_policies(svc):
    iam = svc.root_client("iam")
    iam.create_role(RoleName="sim-role", AssumeRolePolicyDocument=trust())
    iam.put_role_policy(
        RoleName="sim-role", PolicyName="p", PolicyDocument=doc(allow("iam:Get*"))
    )
    iam.attach_role_policy(
        RoleName="sim-role", PolicyArn="arn:aws:iam::aws:policy/IAMReadOnlyAccess"
    )
    results = iam.simulate_principal_policy(
        PolicySourceArn=role_arn("sim-role"), ActionNames=["iam:GetRole", "iam:CreateRole"]
    )["EvaluationResults"]
    assert {r["EvalActionName"]: r["EvalDecision"] for r in results} == {
        "iam:GetRole": "allowed",
        "iam:CreateRole": "implicitDeny",
    }
    allowed = next(r for r in results if r["EvalDecision"] == "allowed")
    sources = {m["SourcePolicyType"] for m in allowed["MatchedStatements"]}
    assert sources == {"role", "aws-managed"}
    with pytest.raises(ClientError) as e:
        iam.simulate_principal_policy(
            PolicySourceArn=role_arn("sim-nobody"), ActionNames=["iam:GetRole"]
        )
    assert e.value.response["Error"]["Code"] == "NoSuchEntity"
    assert e.value.response["Error"]["Message"] == "The role with name sim-nobody cannot be found."
