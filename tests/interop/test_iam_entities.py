"""Every IAM entity API (groups, managed and inline policies, attachments, permissions
boundaries, tags, the simulator's pagination) round-tripped through boto3 against the real
binary: the success shape and each AWS error code and text (policy.md §4.1-§4.9).

Texts policy.md quotes are asserted verbatim. Where AWS publishes no text, the test pins
tokengate's own answer and says so in a comment ("tokengate's text")."""

import datetime
import json

import pytest
from botocore.exceptions import ClientError

from test_policies import ACCOUNT, allow, deny, doc, error, expect

NAME_PATTERN = r"[\w+=,.@-]+"
ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"
IAM_READ_ONLY = "arn:aws:iam::aws:policy/IAMReadOnlyAccess"
READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"


def validation(value, member, constraint):
    return (
        f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy "
        f"constraint: Member must {constraint}"
    )


def name_pattern_error(value, member):
    return validation(value, member, f"satisfy regular expression pattern: {NAME_PATTERN}")


def policy_arn(name, path="/"):
    return f"arn:aws:iam::{ACCOUNT}:policy{path}{name}"


def expect_status(code, status, call, *args, **kwargs):
    with pytest.raises(ClientError) as e:
        call(*args, **kwargs)
    err = error(e)
    assert err["Code"] == code, err
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    return err["Message"]


def paginate(call, list_key, **kwargs):
    """All pages of `call`, following Marker; returns (items, number of pages)."""
    items, pages, marker = [], 0, None
    while True:
        extra = {"Marker": marker} if marker else {}
        page = call(**kwargs, **extra)
        pages += 1
        items.extend(page[list_key])
        if not page["IsTruncated"]:
            assert "Marker" not in page
            return items, pages
        assert page["Marker"]
        marker = page["Marker"]
        assert pages < 50, "pagination does not end"


def sized_doc(non_white_space):
    """A valid document with exactly `non_white_space` characters that are not white space."""
    base = len("".join(doc(allow([])).split()))
    action = non_white_space - base - 2  # the two quotes of the one action
    assert action > len("iam:Get")
    text = doc(allow(["iam:Get" + "X" * (action - len("iam:Get"))]))
    assert len("".join(text.split())) == non_white_space, len("".join(text.split()))
    return text


# --- Groups (§4.2) ---------------------------------------------------------------------


def test_group_create_get_list_shapes(svc):
    iam = svc.root_client("iam")
    g = iam.create_group(GroupName="ie-shape", Path="/ie/shape/")["Group"]
    assert set(g) == {"Path", "GroupName", "GroupId", "Arn", "CreateDate"}
    assert g["Path"] == "/ie/shape/" and g["GroupName"] == "ie-shape"
    assert g["Arn"] == f"arn:aws:iam::{ACCOUNT}:group/ie/shape/ie-shape"
    assert g["GroupId"].startswith("AGPA") and len(g["GroupId"]) == 21
    assert isinstance(g["CreateDate"], datetime.datetime)
    assert iam.create_group(GroupName="ie-default-path")["Group"]["Path"] == "/"

    got = iam.get_group(GroupName="ie-shape")
    assert got["Group"] == g and got["Users"] == [] and got["IsTruncated"] is False

    assert expect_status("EntityAlreadyExists", 409, iam.create_group,
                         GroupName="IE-Shape") == "Group with name IE-Shape already exists."
    assert expect_status("NoSuchEntity", 404, iam.get_group, GroupName="ie-nope") == (
        "The group with name ie-nope cannot be found."
    )
    assert expect_status("ValidationError", 400, iam.create_group, GroupName="bad name") == (
        name_pattern_error("bad name", "groupName")
    )
    assert expect("ValidationError", iam.create_group, GroupName="ie-p", Path="no-slash") == (
        validation("no-slash", "path",
                   r"satisfy regular expression pattern: (\u002F)|(\u002F[\u0021-\u007E]+\u002F)")
    )
    assert expect("ValidationError", iam.get_group, GroupName="x" * 129) == validation(
        "x" * 129, "groupName", "have length less than or equal to 128"
    )


def test_get_group_pages_its_users(svc):
    iam = svc.root_client("iam")
    iam.create_group(GroupName="ie-paged")
    names = [f"ie-member-{i}" for i in range(5)]
    for n in names:
        iam.create_user(UserName=n, Path="/ie/")
        iam.add_user_to_group(GroupName="ie-paged", UserName=n)
    first = iam.get_group(GroupName="ie-paged", MaxItems=2)
    assert [u["UserName"] for u in first["Users"]] == names[:2]
    assert first["IsTruncated"] is True and first["Group"]["GroupName"] == "ie-paged"
    user = first["Users"][0]
    assert set(user) == {"Path", "UserName", "UserId", "Arn", "CreateDate"}
    assert user["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/ie/{names[0]}"
    users, pages = paginate(iam.get_group, "Users", GroupName="ie-paged", MaxItems=2)
    assert [u["UserName"] for u in users] == names and pages == 3
    # boto3's own paginator follows the same markers.
    got = iam.get_paginator("get_group").paginate(
        GroupName="ie-paged", PaginationConfig={"PageSize": 3}
    ).build_full_result()
    assert [u["UserName"] for u in got["Users"]] == names


def test_list_groups_path_prefix_and_pages(svc):
    iam = svc.root_client("iam")
    for n in ["ie-lg-c", "ie-lg-a", "ie-lg-b"]:
        iam.create_group(GroupName=n, Path="/ie-lg/")
    iam.create_group(GroupName="ie-lg-other", Path="/ie-lg-x/")
    listed = iam.list_groups(PathPrefix="/ie-lg/")
    assert [g["GroupName"] for g in listed["Groups"]] == ["ie-lg-a", "ie-lg-b", "ie-lg-c"]
    assert listed["IsTruncated"] is False
    # PathPrefix is a string prefix: "/ie-lg" matches both paths.
    assert [g["GroupName"] for g in iam.list_groups(PathPrefix="/ie-lg")["Groups"]] == [
        "ie-lg-a", "ie-lg-b", "ie-lg-c", "ie-lg-other"
    ]
    page = iam.list_groups(PathPrefix="/ie-lg/", MaxItems=2)
    assert [g["GroupName"] for g in page["Groups"]] == ["ie-lg-a", "ie-lg-b"]
    assert page["IsTruncated"] is True
    rest = iam.list_groups(PathPrefix="/ie-lg/", MaxItems=2, Marker=page["Marker"])
    assert [g["GroupName"] for g in rest["Groups"]] == ["ie-lg-c"]
    assert rest["IsTruncated"] is False
    assert iam.list_groups(PathPrefix="/ie-lg-none/")["Groups"] == []
    for call in [iam.list_groups, iam.list_users]:
        assert expect("ValidationError", call, PathPrefix="no-slash") == validation(
            "no-slash", "pathPrefix",
            r"satisfy regular expression pattern: \u002F[\u0021-\u007F]*"
        )


def test_update_group(svc):
    iam = svc.root_client("iam")
    before = iam.create_group(GroupName="ie-upd", Path="/old/")["Group"]
    iam.create_group(GroupName="ie-upd-taken")
    iam.create_user(UserName="ie-upd-user")
    iam.add_user_to_group(GroupName="ie-upd", UserName="ie-upd-user")

    assert iam.update_group(GroupName="ie-upd", NewGroupName="ie-upd-new", NewPath="/new/")[
        "ResponseMetadata"]["HTTPStatusCode"] == 200
    after = iam.get_group(GroupName="ie-upd-new")
    assert after["Group"]["Path"] == "/new/"
    assert after["Group"]["Arn"] == f"arn:aws:iam::{ACCOUNT}:group/new/ie-upd-new"
    assert after["Group"]["GroupId"] == before["GroupId"]
    assert [u["UserName"] for u in after["Users"]] == ["ie-upd-user"]
    expect("NoSuchEntity", iam.get_group, GroupName="ie-upd")
    assert [g["GroupName"] for g in iam.list_groups_for_user(UserName="ie-upd-user")[
        "Groups"]] == ["ie-upd-new"]

    # Path alone, then name alone.
    iam.update_group(GroupName="ie-upd-new", NewPath="/")
    assert iam.get_group(GroupName="ie-upd-new")["Group"]["Path"] == "/"
    iam.update_group(GroupName="ie-upd-new", NewGroupName="ie-upd-final")
    assert iam.get_group(GroupName="ie-upd-final")["Group"]["Path"] == "/"

    assert expect_status("EntityAlreadyExists", 409, iam.update_group,
                         GroupName="ie-upd-final", NewGroupName="IE-UPD-TAKEN") == (
        "Group with name IE-UPD-TAKEN already exists."
    )
    assert expect_status("NoSuchEntity", 404, iam.update_group, GroupName="ie-upd",
                         NewGroupName="ie-whatever") == (
        "The group with name ie-upd cannot be found."
    )
    assert expect("ValidationError", iam.update_group, GroupName="ie-upd-final",
                  NewGroupName="bad name") == name_pattern_error("bad name", "newGroupName")


def test_delete_group_conflicts(svc):
    iam = svc.root_client("iam")
    iam.create_user(UserName="ie-dg-user")
    iam.create_group(GroupName="ie-dg-members")
    iam.add_user_to_group(GroupName="ie-dg-members", UserName="ie-dg-user")
    iam.create_group(GroupName="ie-dg-inline")
    iam.put_group_policy(GroupName="ie-dg-inline", PolicyName="p",
                         PolicyDocument=doc(allow("iam:GetUser")))
    iam.create_group(GroupName="ie-dg-attached")
    iam.attach_group_policy(GroupName="ie-dg-attached", PolicyArn=IAM_READ_ONLY)

    assert expect_status("DeleteConflict", 409, iam.delete_group,
                         GroupName="ie-dg-members") == (
        "Cannot delete entity, must remove users from group first."
    )
    assert expect_status("DeleteConflict", 409, iam.delete_group,
                         GroupName="ie-dg-inline") == (
        "Cannot delete entity, must delete policies first."
    )
    assert expect_status("DeleteConflict", 409, iam.delete_group,
                         GroupName="ie-dg-attached") == (
        "Cannot delete entity, must detach all policies first."
    )

    iam.remove_user_from_group(GroupName="ie-dg-members", UserName="ie-dg-user")
    iam.delete_group_policy(GroupName="ie-dg-inline", PolicyName="p")
    iam.detach_group_policy(GroupName="ie-dg-attached", PolicyArn=IAM_READ_ONLY)
    for g in ["ie-dg-members", "ie-dg-inline", "ie-dg-attached"]:
        iam.delete_group(GroupName=g)
        expect("NoSuchEntity", iam.get_group, GroupName=g)
    assert expect_status("NoSuchEntity", 404, iam.delete_group, GroupName="ie-dg-members") == (
        "The group with name ie-dg-members cannot be found."
    )
    assert iam.list_groups_for_user(UserName="ie-dg-user")["Groups"] == []


def test_group_membership(svc):
    iam = svc.root_client("iam")
    iam.create_user(UserName="ie-gm-user")
    iam.create_user(UserName="ie-gm-outsider")
    for n in ["ie-gm-b", "ie-gm-a", "ie-gm-c"]:
        iam.create_group(GroupName=n, Path="/gm/")
        iam.add_user_to_group(GroupName=n, UserName="ie-gm-user")
    # Adding twice is not an error.
    iam.add_user_to_group(GroupName="ie-gm-a", UserName="ie-gm-user")
    groups = iam.list_groups_for_user(UserName="ie-gm-user")
    assert [g["GroupName"] for g in groups["Groups"]] == ["ie-gm-a", "ie-gm-b", "ie-gm-c"]
    assert set(groups["Groups"][0]) == {"Path", "GroupName", "GroupId", "Arn", "CreateDate"}
    assert groups["Groups"][0]["Path"] == "/gm/" and groups["IsTruncated"] is False
    got, pages = paginate(iam.list_groups_for_user, "Groups", UserName="ie-gm-user",
                          MaxItems=2)
    assert [g["GroupName"] for g in got] == ["ie-gm-a", "ie-gm-b", "ie-gm-c"] and pages == 2

    assert expect_status("NoSuchEntity", 404, iam.add_user_to_group, GroupName="ie-gm-a",
                         UserName="ie-gm-ghost") == (
        "The user with name ie-gm-ghost cannot be found."
    )
    assert expect("NoSuchEntity", iam.add_user_to_group, GroupName="ie-gm-ghost",
                  UserName="ie-gm-user") == "The group with name ie-gm-ghost cannot be found."
    assert expect("NoSuchEntity", iam.list_groups_for_user, UserName="ie-gm-ghost") == (
        "The user with name ie-gm-ghost cannot be found."
    )
    # AWS publishes no text for removing a non-member; tokengate's text.
    assert expect_status("NoSuchEntity", 404, iam.remove_user_from_group, GroupName="ie-gm-a",
                         UserName="ie-gm-outsider") == (
        "The user with name ie-gm-outsider cannot be found in group ie-gm-a."
    )
    assert expect("NoSuchEntity", iam.remove_user_from_group, GroupName="ie-gm-ghost",
                  UserName="ie-gm-user") == "The group with name ie-gm-ghost cannot be found."
    assert expect("NoSuchEntity", iam.remove_user_from_group, GroupName="ie-gm-a",
                  UserName="ie-gm-ghost") == "The user with name ie-gm-ghost cannot be found."
    assert expect("ValidationError", iam.add_user_to_group, GroupName="ie-gm-a",
                  UserName="bad name") == name_pattern_error("bad name", "userName")

    iam.remove_user_from_group(GroupName="ie-gm-b", UserName="ie-gm-user")
    assert [g["GroupName"] for g in iam.list_groups_for_user(UserName="ie-gm-user")[
        "Groups"]] == ["ie-gm-a", "ie-gm-c"]
    assert iam.get_group(GroupName="ie-gm-b")["Users"] == []


# --- Managed policies (§4.3) -----------------------------------------------------------


def test_create_and_get_policy_shapes(svc):
    iam = svc.root_client("iam")
    document = doc(allow("iam:GetUser"))
    created = iam.create_policy(
        PolicyName="ie-shape-policy",
        Path="/ie/shape/",
        PolicyDocument=document,
        Description="A policy for shapes",
        Tags=[{"Key": "team", "Value": "platform"}, {"Key": "empty", "Value": ""}],
    )["Policy"]
    arn = policy_arn("ie-shape-policy", "/ie/shape/")
    assert created["Arn"] == arn and created["Path"] == "/ie/shape/"
    assert created["PolicyName"] == "ie-shape-policy"
    assert created["PolicyId"].startswith("ANPA") and len(created["PolicyId"]) == 21
    assert created["DefaultVersionId"] == "v1"
    assert created["AttachmentCount"] == 0 and created["PermissionsBoundaryUsageCount"] == 0
    assert created["IsAttachable"] is True
    assert created["Description"] == "A policy for shapes"
    assert isinstance(created["CreateDate"], datetime.datetime)
    assert created["UpdateDate"] == created["CreateDate"]
    assert sorted((t["Key"], t["Value"]) for t in created["Tags"]) == [
        ("empty", ""), ("team", "platform")
    ]

    got = iam.get_policy(PolicyArn=arn)["Policy"]
    assert got == created

    # No Description and no Tags: the members are absent.
    plain = iam.create_policy(PolicyName="ie-plain-policy", PolicyDocument=document)["Policy"]
    assert "Description" not in plain and "Tags" not in plain and plain["Path"] == "/"
    got = iam.get_policy(PolicyArn=plain["Arn"])["Policy"]
    assert "Description" not in got and "Tags" not in got

    assert expect_status("NoSuchEntity", 404, iam.get_policy,
                         PolicyArn=policy_arn("ie-none")) == (
        f"Policy {policy_arn('ie-none')} was not found."
    )
    assert expect_status("ValidationError", 400, iam.create_policy, PolicyName="bad name",
                         PolicyDocument=document) == name_pattern_error("bad name", "policyName")
    assert expect("ValidationError", iam.create_policy, PolicyName="ie-bad-path",
                  Path="/a b/", PolicyDocument=document) == validation(
        "/a b/", "path", r"satisfy regular expression pattern: ((/[A-Za-z0-9\.,\+@=_-]+)*)/"
    )
    assert expect("ValidationError", iam.create_policy, PolicyName="ie-long-description",
                  Description="d" * 1001, PolicyDocument=document) == validation(
        "d" * 1001, "description", "have length less than or equal to 1000"
    )
    # A character outside [\u0009\u000A\u000D\u0020-\u00FF] in the document.
    bad_chars = json.dumps({"Version": "2012-10-17", "Statement": [allow("iam:GetUser")],
                            "Id": "\u0100"}, ensure_ascii=False)
    assert expect("ValidationError", iam.create_policy, PolicyName="ie-bad-chars",
                  PolicyDocument=bad_chars) == validation(
        bad_chars, "policyDocument",
        r"satisfy regular expression pattern: [\u0009\u000A\u000D\u0020-\u00FF]+"
    )


def test_create_policy_size_quota(svc):
    iam = svc.root_client("iam")
    at_limit = sized_doc(6144)
    iam.create_policy(PolicyName="ie-size-ok", PolicyDocument=at_limit)
    # White space does not count.
    spaced = json.dumps(json.loads(at_limit), indent=8)
    assert len(spaced) > 6144 + 100
    iam.create_policy(PolicyName="ie-size-spaced", PolicyDocument=spaced)
    over = sized_doc(6145)
    assert expect_status("LimitExceeded", 409, iam.create_policy, PolicyName="ie-size-over",
                         PolicyDocument=over) == "Cannot exceed quota for PolicySize: 6144"
    arn = policy_arn("ie-size-ok")
    assert expect("LimitExceeded", iam.create_policy_version, PolicyArn=arn,
                  PolicyDocument=over) == "Cannot exceed quota for PolicySize: 6144"
    expect("NoSuchEntity", iam.get_policy, PolicyArn=policy_arn("ie-size-over"))


def test_policy_versions(svc):
    iam = svc.root_client("iam")
    arn = iam.create_policy(PolicyName="ie-versions",
                            PolicyDocument=doc(allow("iam:GetUser")))["Policy"]["Arn"]
    v2 = iam.create_policy_version(PolicyArn=arn, PolicyDocument=doc(allow("iam:ListUsers")))[
        "PolicyVersion"]
    assert v2["VersionId"] == "v2" and v2["IsDefaultVersion"] is False
    assert "Document" not in v2 and isinstance(v2["CreateDate"], datetime.datetime)
    assert iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"] == "v1"
    v3 = iam.create_policy_version(PolicyArn=arn, PolicyDocument=doc(allow("iam:ListGroups")),
                                   SetAsDefault=True)["PolicyVersion"]
    assert v3["VersionId"] == "v3" and v3["IsDefaultVersion"] is True
    assert iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"] == "v3"
    assert iam.get_policy_version(PolicyArn=arn, VersionId="v1")["PolicyVersion"][
        "IsDefaultVersion"] is False

    listed = iam.list_policy_versions(PolicyArn=arn)
    assert listed["IsTruncated"] is False
    assert {v["VersionId"]: v["IsDefaultVersion"] for v in listed["Versions"]} == {
        "v1": False, "v2": False, "v3": True
    }
    assert all("Document" not in v for v in listed["Versions"])
    # Newest first, as the AWS CLI's list-policy-versions example shows; pages follow.
    assert [v["VersionId"] for v in listed["Versions"]] == ["v3", "v2", "v1"]
    paged, pages = paginate(iam.list_policy_versions, "Versions", PolicyArn=arn, MaxItems=1)
    assert [v["VersionId"] for v in paged] == ["v3", "v2", "v1"] and pages == 3

    iam.set_default_policy_version(PolicyArn=arn, VersionId="v2")
    assert iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"] == "v2"
    iam.delete_policy_version(PolicyArn=arn, VersionId="v3")
    assert [v["VersionId"] for v in iam.list_policy_versions(PolicyArn=arn)["Versions"]] == [
        "v2", "v1"
    ]
    assert expect_status("DeleteConflict", 409, iam.delete_policy_version, PolicyArn=arn,
                         VersionId="v2") == "Cannot delete the default version of a policy."

    # AWS publishes no text for an unknown version id; tokengate's text.
    missing = f"Policy {arn} version v3 does not exist or is not attachable."
    assert expect_status("NoSuchEntity", 404, iam.get_policy_version, PolicyArn=arn,
                         VersionId="v3") == missing
    assert expect("NoSuchEntity", iam.set_default_policy_version, PolicyArn=arn,
                  VersionId="v3") == missing
    assert expect("NoSuchEntity", iam.delete_policy_version, PolicyArn=arn,
                  VersionId="v3") == missing
    gone = policy_arn("ie-versions-none")
    for call, extra in [
        (iam.get_policy_version, {"VersionId": "v1"}),
        (iam.set_default_policy_version, {"VersionId": "v1"}),
        (iam.delete_policy_version, {"VersionId": "v1"}),
        (iam.list_policy_versions, {}),
        (iam.create_policy_version, {"PolicyDocument": doc(allow("iam:GetUser"))}),
    ]:
        want = f"Policy {gone} was not found."
        if call == iam.get_policy_version:
            want = f"Policy {gone} version v1 does not exist or is not attachable."
        assert expect("NoSuchEntity", call, PolicyArn=gone, **extra) == want
    assert expect("ValidationError", iam.get_policy_version, PolicyArn=arn,
                  VersionId="1") == validation(
        "1", "versionId", r"satisfy regular expression pattern: v[1-9][0-9]*(\.[A-Za-z0-9-]*)?"
    )

    # AWS managed policies: one default version, read only.
    aws_versions = iam.list_policy_versions(PolicyArn=IAM_READ_ONLY)["Versions"]
    assert len(aws_versions) == 1 and aws_versions[0]["IsDefaultVersion"] is True
    aws_policy = iam.get_policy(PolicyArn=IAM_READ_ONLY)["Policy"]
    aws_version = iam.get_policy_version(PolicyArn=IAM_READ_ONLY,
                                         VersionId=aws_policy["DefaultVersionId"])["PolicyVersion"]
    assert aws_versions[0]["VersionId"] == aws_version["VersionId"]
    assert aws_versions[0]["CreateDate"] == aws_version["CreateDate"] == aws_policy["UpdateDate"]
    for call, extra in [
        (iam.set_default_policy_version, {"VersionId": "v1"}),
        (iam.delete_policy_version, {"VersionId": "v1"}),
        (iam.tag_policy, {"Tags": [{"Key": "k", "Value": "v"}]}),
    ]:
        expect("UnmodifiableEntity", call, PolicyArn=IAM_READ_ONLY, **extra)


def test_policy_documents_come_back_decoded(svc):
    """IAM URL-encodes documents; boto3 decodes them to dicts (§4.1). A document with
    characters that URL-encoding changes must survive the round trip unchanged."""
    iam = svc.root_client("iam")
    tricky = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Tricky1",
                "Effect": "Allow",
                "Action": ["iam:GetUser", "iam:ListUsers"],
                "Resource": "arn:aws:iam::*:user/a+b/*",
                "Condition": {
                    "StringEquals": {
                        "aws:username": [
                            "a b", "100%", "x+y", "a&b=c", "%41", "caf\u00e9 \u00fc\u00ff"
                        ]
                    }
                },
            }
        ],
    }
    text = json.dumps(tricky, ensure_ascii=False, indent=2)
    arn = iam.create_policy(PolicyName="ie-tricky", PolicyDocument=text)["Policy"]["Arn"]
    assert iam.get_policy_version(PolicyArn=arn, VersionId="v1")["PolicyVersion"][
        "Document"] == tricky
    iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(tricky))
    assert iam.get_policy_version(PolicyArn=arn, VersionId="v2")["PolicyVersion"][
        "Document"] == tricky

    iam.create_user(UserName="ie-tricky-user")
    iam.put_user_policy(UserName="ie-tricky-user", PolicyName="tricky", PolicyDocument=text)
    assert iam.get_user_policy(UserName="ie-tricky-user", PolicyName="tricky")[
        "PolicyDocument"] == tricky
    iam.create_group(GroupName="ie-tricky-group")
    iam.put_group_policy(GroupName="ie-tricky-group", PolicyName="tricky", PolicyDocument=text)
    assert iam.get_group_policy(GroupName="ie-tricky-group", PolicyName="tricky")[
        "PolicyDocument"] == tricky

    # The raw wire text is the URL-encoded document, byte for byte (botocore unquotes it).
    raw = {}

    def keep(http_response, **_):
        raw["body"] = http_response.content.decode()

    iam.meta.events.register("after-call.iam.GetPolicyVersion", keep)
    try:
        iam.get_policy_version(PolicyArn=arn, VersionId="v1")
    finally:
        iam.meta.events.unregister("after-call.iam.GetPolicyVersion", keep)
    from urllib.parse import quote

    assert f"<Document>{quote(text, safe='-_.~')}</Document>" in raw["body"]


def test_list_policies_filters_and_pages(svc):
    iam = svc.root_client("iam")
    document = doc(allow("iam:GetUser"))
    arns = {
        n: iam.create_policy(PolicyName=n, Path="/ie-lp/", PolicyDocument=document)["Policy"][
            "Arn"]
        for n in ["ie-lp-c", "ie-lp-a", "ie-lp-b", "ie-lp-boundary"]
    }
    iam.create_policy(PolicyName="ie-lp-elsewhere", Path="/ie-lp-x/", PolicyDocument=document)
    iam.create_user(UserName="ie-lp-user")
    iam.create_group(GroupName="ie-lp-group")
    iam.attach_user_policy(UserName="ie-lp-user", PolicyArn=arns["ie-lp-a"])
    iam.attach_group_policy(GroupName="ie-lp-group", PolicyArn=arns["ie-lp-b"])
    iam.put_user_permissions_boundary(UserName="ie-lp-user",
                                      PermissionsBoundary=arns["ie-lp-boundary"])

    def names(**kwargs):
        return [p["PolicyName"] for p in iam.list_policies(MaxItems=1000, **kwargs)["Policies"]]

    local = names(Scope="Local", PathPrefix="/ie-lp/")
    assert local == ["ie-lp-a", "ie-lp-b", "ie-lp-boundary", "ie-lp-c"]
    assert names(Scope="All", PathPrefix="/ie-lp/") == local
    # Policy path prefixes have the shape of a policy path (botocore policyPathType).
    assert expect("ValidationError", iam.list_policies, PathPrefix="/ie-lp") == validation(
        "/ie-lp", "pathPrefix",
        r"satisfy regular expression pattern: ((/[A-Za-z0-9\.,\+@=_-]+)*)/"
    )
    assert names(Scope="AWS", PathPrefix="/ie-lp/") == []
    aws = names(Scope="AWS")
    assert "AdministratorAccess" in aws and not any(n.startswith("ie-") for n in aws)
    everything = names()
    assert set(aws) <= set(everything) and set(local) <= set(everything)
    assert everything == sorted(everything)

    assert names(Scope="Local", PathPrefix="/ie-lp/", OnlyAttached=True) == [
        "ie-lp-a", "ie-lp-b", "ie-lp-boundary"
    ]
    assert names(Scope="Local", PathPrefix="/ie-lp/", OnlyAttached=True,
                 PolicyUsageFilter="PermissionsPolicy") == ["ie-lp-a", "ie-lp-b"]
    assert names(Scope="Local", PathPrefix="/ie-lp/", OnlyAttached=True,
                 PolicyUsageFilter="PermissionsBoundary") == ["ie-lp-boundary"]
    assert names(Scope="Local", PathPrefix="/ie-lp/", OnlyAttached=False) == local
    # tokengate's decision (AWS documents no more): the usage filter alone keeps the
    # policies in use that way, AWS and customer managed alike.
    assert names(Scope="Local", PathPrefix="/ie-lp/",
                 PolicyUsageFilter="PermissionsBoundary") == ["ie-lp-boundary"]
    assert names(PathPrefix="/ie-lp/", PolicyUsageFilter="PermissionsPolicy") == [
        "ie-lp-a", "ie-lp-b"
    ]

    # AWS managed policies in use show up under OnlyAttached too.
    iam.attach_user_policy(UserName="ie-lp-user", PolicyArn=READ_ONLY)
    assert "ReadOnlyAccess" in names(Scope="AWS", OnlyAttached=True,
                                     PolicyUsageFilter="PermissionsPolicy")
    assert "ReadOnlyAccess" not in names(Scope="AWS", OnlyAttached=True,
                                         PolicyUsageFilter="PermissionsBoundary")
    iam.detach_user_policy(UserName="ie-lp-user", PolicyArn=READ_ONLY)

    # The listing omits Description and Tags (botocore ListPolicies doc).
    listed = iam.list_policies(Scope="Local", PathPrefix="/ie-lp/")["Policies"][0]
    assert listed["Arn"] == arns["ie-lp-a"] and listed["AttachmentCount"] == 1
    assert "Description" not in listed and "Tags" not in listed

    page = iam.list_policies(Scope="Local", PathPrefix="/ie-lp/", MaxItems=3)
    assert [p["PolicyName"] for p in page["Policies"]] == local[:3] and page["IsTruncated"]
    rest = iam.list_policies(Scope="Local", PathPrefix="/ie-lp/", MaxItems=3,
                             Marker=page["Marker"])
    assert [p["PolicyName"] for p in rest["Policies"]] == local[3:]
    assert rest["IsTruncated"] is False
    all_aws, pages = paginate(iam.list_policies, "Policies", Scope="AWS", MaxItems=2)
    assert [p["PolicyName"] for p in all_aws] == aws and pages == (len(aws) + 1) // 2

    assert expect("ValidationError", iam.list_policies, Scope="Mine") == validation(
        "Mine", "scope", "satisfy enum value set: [All, AWS, Local]"
    )
    assert expect("ValidationError", iam.list_policies,
                  PolicyUsageFilter="Everything") == validation(
        "Everything", "policyUsageFilter",
        "satisfy enum value set: [PermissionsPolicy, PermissionsBoundary]"
    )
    iam.delete_user_permissions_boundary(UserName="ie-lp-user")


def test_delete_policy(svc):
    iam = svc.root_client("iam")
    arn = iam.create_policy(PolicyName="ie-delete-me",
                            PolicyDocument=doc(allow("iam:GetUser")))["Policy"]["Arn"]
    iam.create_group(GroupName="ie-delete-group")
    iam.attach_group_policy(GroupName="ie-delete-group", PolicyArn=arn)
    assert expect_status("DeleteConflict", 409, iam.delete_policy, PolicyArn=arn) == (
        "Cannot delete a policy attached to entities."
    )
    iam.detach_group_policy(GroupName="ie-delete-group", PolicyArn=arn)
    iam.create_policy_version(PolicyArn=arn, PolicyDocument=doc(allow("iam:ListUsers")))
    # AWS's text for versions left over (tokengate's wording of the botocore rule).
    assert expect("DeleteConflict", iam.delete_policy, PolicyArn=arn) == (
        "This policy has more than one version. Before you delete a policy, you must delete "
        "the policy's versions. The default version is deleted with the policy."
    )
    iam.delete_policy_version(PolicyArn=arn, VersionId="v2")
    iam.tag_policy(PolicyArn=arn, Tags=[{"Key": "k", "Value": "v"}])
    assert iam.delete_policy(PolicyArn=arn)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert expect_status("NoSuchEntity", 404, iam.delete_policy, PolicyArn=arn) == (
        f"Policy {arn} was not found."
    )
    expect("NoSuchEntity", iam.get_policy_version, PolicyArn=arn, VersionId="v1")
    expect("NoSuchEntity", iam.list_policy_tags, PolicyArn=arn)
    # The name is free again, with a fresh id and v1.
    again = iam.create_policy(PolicyName="ie-delete-me",
                              PolicyDocument=doc(allow("iam:GetUser")))["Policy"]
    assert again["DefaultVersionId"] == "v1"
    assert expect_status("UnmodifiableEntity", 400, iam.delete_policy, PolicyArn=ADMIN) == (
        f"Policy {ADMIN} is an AWS managed policy and cannot be modified."
    )


def test_policy_tags(svc):
    iam = svc.root_client("iam")
    arn = iam.create_policy(PolicyName="ie-tagged-policy",
                            PolicyDocument=doc(allow("iam:GetUser")))["Policy"]["Arn"]
    assert iam.list_policy_tags(PolicyArn=arn)["Tags"] == []
    iam.tag_policy(PolicyArn=arn, Tags=[{"Key": "b", "Value": "1"}, {"Key": "a", "Value": ""}])
    iam.tag_policy(PolicyArn=arn, Tags=[{"Key": "b", "Value": "2"}])  # overwrites
    tags = iam.list_policy_tags(PolicyArn=arn)
    assert sorted((t["Key"], t["Value"]) for t in tags["Tags"]) == [("a", ""), ("b", "2")]
    assert tags["IsTruncated"] is False
    page = iam.list_policy_tags(PolicyArn=arn, MaxItems=1)
    assert len(page["Tags"]) == 1 and page["IsTruncated"] is True
    rest = iam.list_policy_tags(PolicyArn=arn, MaxItems=1, Marker=page["Marker"])
    assert len(rest["Tags"]) == 1 and rest["IsTruncated"] is False
    assert {page["Tags"][0]["Key"], rest["Tags"][0]["Key"]} == {"a", "b"}
    assert sorted(t["Key"] for t in iam.get_policy(PolicyArn=arn)["Policy"]["Tags"]) == [
        "a", "b"
    ]
    iam.untag_policy(PolicyArn=arn, TagKeys=["a", "not-there"])
    assert iam.list_policy_tags(PolicyArn=arn)["Tags"] == [{"Key": "b", "Value": "2"}]

    over = [{"Key": f"k{i}", "Value": "v"} for i in range(50)]
    assert expect_status("LimitExceeded", 409, iam.tag_policy, PolicyArn=arn, Tags=over) == (
        "Cannot exceed quota for TagsPerPolicy: 50"
    )
    assert expect("ValidationError", iam.tag_policy, PolicyArn=arn,
                  Tags=[{"Key": "bad*key", "Value": "v"}]) == (
        "1 validation error detected: Value 'bad*key' at 'tags.1.member.key' failed to satisfy "
        r"constraint: Member must satisfy regular expression pattern: [\p{L}\p{Z}\p{N}_.:/=+\-@]+"
    )
    gone = policy_arn("ie-tagged-none")
    for call, extra in [
        (iam.tag_policy, {"Tags": [{"Key": "k", "Value": "v"}]}),
        (iam.untag_policy, {"TagKeys": ["k"]}),
        (iam.list_policy_tags, {}),
    ]:
        assert expect_status("NoSuchEntity", 404, call, PolicyArn=gone, **extra) == (
            f"Policy {gone} was not found."
        )
    assert iam.list_policy_tags(PolicyArn=ADMIN)["Tags"] == []


# --- Attach / detach (§4.4) ------------------------------------------------------------


def test_attach_and_detach(svc):
    iam = svc.root_client("iam")
    iam.create_user(UserName="ie-att-user")
    iam.create_group(GroupName="ie-att-group")
    local = iam.create_policy(PolicyName="ie-att-local", Path="/ie-att/",
                              PolicyDocument=doc(allow("iam:GetUser")))["Policy"]["Arn"]

    iam.attach_user_policy(UserName="ie-att-user", PolicyArn=local)
    iam.attach_user_policy(UserName="ie-att-user", PolicyArn=IAM_READ_ONLY)
    iam.attach_user_policy(UserName="ie-att-user", PolicyArn=local)  # again: no error
    iam.attach_group_policy(GroupName="ie-att-group", PolicyArn=local)
    iam.attach_group_policy(GroupName="ie-att-group", PolicyArn=ADMIN)
    assert iam.get_policy(PolicyArn=local)["Policy"]["AttachmentCount"] == 2
    assert iam.get_policy(PolicyArn=ADMIN)["Policy"]["AttachmentCount"] >= 1

    attached = iam.list_attached_user_policies(UserName="ie-att-user")
    assert sorted((a["PolicyName"], a["PolicyArn"]) for a in attached["AttachedPolicies"]) == [
        ("IAMReadOnlyAccess", IAM_READ_ONLY), ("ie-att-local", local)
    ]
    assert attached["IsTruncated"] is False
    assert iam.list_attached_user_policies(UserName="ie-att-user", PathPrefix="/ie-att/")[
        "AttachedPolicies"] == [{"PolicyName": "ie-att-local", "PolicyArn": local}]
    assert iam.list_attached_user_policies(UserName="ie-att-user", PathPrefix="/ie-none/")[
        "AttachedPolicies"] == []
    assert expect("ValidationError", iam.list_attached_user_policies, UserName="ie-att-user",
                  PathPrefix="/ie-att") == validation(
        "/ie-att", "pathPrefix",
        r"satisfy regular expression pattern: ((/[A-Za-z0-9\.,\+@=_-]+)*)/"
    )
    page = iam.list_attached_user_policies(UserName="ie-att-user", MaxItems=1)
    assert len(page["AttachedPolicies"]) == 1 and page["IsTruncated"] is True
    rest = iam.list_attached_user_policies(UserName="ie-att-user", MaxItems=1,
                                           Marker=page["Marker"])
    assert len(rest["AttachedPolicies"]) == 1 and rest["IsTruncated"] is False
    group_attached = iam.list_attached_group_policies(GroupName="ie-att-group")
    assert sorted(a["PolicyName"] for a in group_attached["AttachedPolicies"]) == [
        "AdministratorAccess", "ie-att-local"
    ]
    assert iam.list_attached_group_policies(GroupName="ie-att-group", PathPrefix="/ie-att/")[
        "AttachedPolicies"] == [{"PolicyName": "ie-att-local", "PolicyArn": local}]

    nope = "arn:aws:iam::aws:policy/Nope"
    for call, who in [(iam.attach_user_policy, {"UserName": "ie-att-user"}),
                      (iam.attach_group_policy, {"GroupName": "ie-att-group"})]:
        assert expect_status("NoSuchEntity", 404, call, PolicyArn=nope, **who) == (
            f"Policy {nope} does not exist or is not attachable."
        )
        assert expect("NoSuchEntity", call, PolicyArn=policy_arn("ie-att-none"), **who) == (
            f"Policy {policy_arn('ie-att-none')} does not exist or is not attachable."
        )
    assert expect("NoSuchEntity", iam.attach_user_policy, UserName="ie-att-ghost",
                  PolicyArn=local) == "The user with name ie-att-ghost cannot be found."
    assert expect("NoSuchEntity", iam.attach_group_policy, GroupName="ie-att-ghost",
                  PolicyArn=local) == "The group with name ie-att-ghost cannot be found."
    assert expect("NoSuchEntity", iam.list_attached_user_policies,
                  UserName="ie-att-ghost") == "The user with name ie-att-ghost cannot be found."
    assert expect("NoSuchEntity", iam.list_attached_group_policies,
                  GroupName="ie-att-ghost") == "The group with name ie-att-ghost cannot be found."
    assert expect("ValidationError", iam.attach_group_policy, GroupName="bad name",
                  PolicyArn=local) == name_pattern_error("bad name", "groupName")

    iam.detach_user_policy(UserName="ie-att-user", PolicyArn=IAM_READ_ONLY)
    iam.detach_group_policy(GroupName="ie-att-group", PolicyArn=ADMIN)
    assert [a["PolicyArn"] for a in iam.list_attached_user_policies(UserName="ie-att-user")[
        "AttachedPolicies"]] == [local]
    assert expect_status("NoSuchEntity", 404, iam.detach_group_policy,
                         GroupName="ie-att-group", PolicyArn=ADMIN) == (
        f"Policy {ADMIN} was not found."
    )
    assert expect("NoSuchEntity", iam.detach_user_policy, UserName="ie-att-ghost",
                  PolicyArn=local) == "The user with name ie-att-ghost cannot be found."
    assert expect("NoSuchEntity", iam.detach_group_policy, GroupName="ie-att-ghost",
                  PolicyArn=local) == "The group with name ie-att-ghost cannot be found."


def test_group_attached_policy_quota(svc):
    iam = svc.root_client("iam")
    iam.create_group(GroupName="ie-quota-group")
    arns = [
        iam.create_policy(PolicyName=f"ie-quota-{i}",
                          PolicyDocument=doc(allow("iam:GetUser")))["Policy"]["Arn"]
        for i in range(10)
    ]
    for a in arns[:9]:
        iam.attach_group_policy(GroupName="ie-quota-group", PolicyArn=a)
    iam.attach_group_policy(GroupName="ie-quota-group", PolicyArn=IAM_READ_ONLY)
    assert len(iam.list_attached_group_policies(GroupName="ie-quota-group")[
        "AttachedPolicies"]) == 10
    assert expect_status("LimitExceeded", 409, iam.attach_group_policy,
                         GroupName="ie-quota-group", PolicyArn=arns[9]) == (
        "Cannot exceed quota for PoliciesPerGroup: 10"
    )
    # Attaching one already attached is not a new attachment.
    iam.attach_group_policy(GroupName="ie-quota-group", PolicyArn=arns[0])


def test_list_entities_for_policy(svc):
    iam = svc.root_client("iam")
    arn = iam.create_policy(PolicyName="ie-ent",
                            PolicyDocument=doc(allow("iam:GetUser")))["Policy"]["Arn"]
    users = {}
    for n, path in [("ie-ent-u2", "/"), ("ie-ent-u1", "/ie-ent/"), ("ie-ent-bounded", "/")]:
        users[n] = iam.create_user(UserName=n, Path=path)["User"]["UserId"]
    groups = {}
    for n, path in [("ie-ent-g1", "/ie-ent/"), ("ie-ent-g2", "/")]:
        groups[n] = iam.create_group(GroupName=n, Path=path)["Group"]["GroupId"]
    iam.attach_user_policy(UserName="ie-ent-u1", PolicyArn=arn)
    iam.attach_user_policy(UserName="ie-ent-u2", PolicyArn=arn)
    iam.attach_group_policy(GroupName="ie-ent-g1", PolicyArn=arn)
    iam.attach_group_policy(GroupName="ie-ent-g2", PolicyArn=arn)
    iam.put_user_permissions_boundary(UserName="ie-ent-bounded", PermissionsBoundary=arn)

    got = iam.list_entities_for_policy(PolicyArn=arn)
    assert got["PolicyUsers"] == [
        {"UserName": n, "UserId": users[n]} for n in ["ie-ent-bounded", "ie-ent-u1", "ie-ent-u2"]
    ]
    assert got["PolicyGroups"] == [
        {"GroupName": n, "GroupId": groups[n]} for n in ["ie-ent-g1", "ie-ent-g2"]
    ]
    assert got["PolicyRoles"] == [] and got["IsTruncated"] is False

    def names(**kwargs):
        r = iam.list_entities_for_policy(PolicyArn=arn, **kwargs)
        return ([u["UserName"] for u in r["PolicyUsers"]],
                [g["GroupName"] for g in r["PolicyGroups"]])

    assert names(EntityFilter="User") == (["ie-ent-bounded", "ie-ent-u1", "ie-ent-u2"], [])
    assert names(EntityFilter="Group") == ([], ["ie-ent-g1", "ie-ent-g2"])
    assert names(EntityFilter="Role") == ([], [])
    assert names(PolicyUsageFilter="PermissionsPolicy") == (
        ["ie-ent-u1", "ie-ent-u2"], ["ie-ent-g1", "ie-ent-g2"]
    )
    assert names(PolicyUsageFilter="PermissionsBoundary") == (["ie-ent-bounded"], [])
    assert names(EntityFilter="Group", PolicyUsageFilter="PermissionsBoundary") == ([], [])
    assert names(PathPrefix="/ie-ent/") == (["ie-ent-u1"], ["ie-ent-g1"])
    assert expect("ValidationError", iam.list_entities_for_policy, PolicyArn=arn,
                  PathPrefix="/ie-ent") == validation(
        "/ie-ent", "pathPrefix",
        r"satisfy regular expression pattern: (\u002F)|(\u002F[\u0021-\u007E]+\u002F)"
    )

    # Pages run over the groups, then the users.
    seen, pages, marker = ([], []), 0, None
    while True:
        extra = {"Marker": marker} if marker else {}
        r = iam.list_entities_for_policy(PolicyArn=arn, MaxItems=2, **extra)
        pages += 1
        assert len(r["PolicyUsers"]) + len(r["PolicyGroups"]) <= 2
        seen[0].extend(u["UserName"] for u in r["PolicyUsers"])
        seen[1].extend(g["GroupName"] for g in r["PolicyGroups"])
        if not r["IsTruncated"]:
            break
        marker = r["Marker"]
        assert pages < 10
    assert seen == (["ie-ent-bounded", "ie-ent-u1", "ie-ent-u2"], ["ie-ent-g1", "ie-ent-g2"])
    assert pages == 3

    # AWS managed policies too.
    iam.attach_group_policy(GroupName="ie-ent-g2", PolicyArn=READ_ONLY)
    assert "ie-ent-g2" in [g["GroupName"] for g in iam.list_entities_for_policy(
        PolicyArn=READ_ONLY, EntityFilter="Group")["PolicyGroups"]]
    assert expect_status("NoSuchEntity", 404, iam.list_entities_for_policy,
                         PolicyArn=policy_arn("ie-ent-none")) == (
        f"Policy {policy_arn('ie-ent-none')} was not found."
    )
    assert expect("ValidationError", iam.list_entities_for_policy, PolicyArn=arn,
                  EntityFilter="Robot") == validation(
        "Robot", "entityFilter",
        "satisfy enum value set: [User, Role, Group, LocalManagedPolicy, AWSManagedPolicy]"
    )


# --- Inline policies (§4.4) ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["user", "group"])
def test_inline_policies(svc, kind):
    iam = svc.root_client("iam")
    owner = f"ie-inline-{kind}"
    if kind == "user":
        iam.create_user(UserName=owner)
        who = {"UserName": owner}
        put, get, delete, names = (iam.put_user_policy, iam.get_user_policy,
                                   iam.delete_user_policy, iam.list_user_policies)
        member = "UserName"
    else:
        iam.create_group(GroupName=owner)
        who = {"GroupName": owner}
        put, get, delete, names = (iam.put_group_policy, iam.get_group_policy,
                                   iam.delete_group_policy, iam.list_group_policies)
        member = "GroupName"
    first = doc(allow("iam:GetUser"))
    put(PolicyName="zeta", PolicyDocument=first, **who)
    put(PolicyName="alpha", PolicyDocument=first, **who)
    put(PolicyName="mid", PolicyDocument=first, **who)
    got = get(PolicyName="alpha", **who)
    assert got[member] == owner and got["PolicyName"] == "alpha"
    assert got["PolicyDocument"] == json.loads(first)
    # Put replaces.
    second = doc(deny("iam:*"))
    put(PolicyName="alpha", PolicyDocument=second, **who)
    assert get(PolicyName="alpha", **who)["PolicyDocument"] == json.loads(second)
    listed = names(**who)
    assert listed["PolicyNames"] == ["alpha", "mid", "zeta"] and listed["IsTruncated"] is False
    page = names(MaxItems=2, **who)
    assert page["PolicyNames"] == ["alpha", "mid"] and page["IsTruncated"] is True
    rest = names(MaxItems=2, Marker=page["Marker"], **who)
    assert rest["PolicyNames"] == ["zeta"] and rest["IsTruncated"] is False
    # Inline policies need no Version (2008-10-17 is implied), unlike managed ones.
    put(PolicyName="old", PolicyDocument=json.dumps({"Statement": [allow("iam:GetUser")]}),
        **who)

    assert expect_status("NoSuchEntity", 404, get, PolicyName="nope", **who) == (
        f"The {kind} policy with name nope cannot be found."
    )
    assert expect_status("NoSuchEntity", 404, delete, PolicyName="nope", **who) == (
        f"The {kind} policy with name nope cannot be found."
    )
    ghost = {member: f"ie-ghost-{kind}"}
    missing = f"The {kind} with name ie-ghost-{kind} cannot be found."
    assert expect("NoSuchEntity", put, PolicyName="p", PolicyDocument=first, **ghost) == missing
    assert expect("NoSuchEntity", get, PolicyName="p", **ghost) == missing
    assert expect("NoSuchEntity", delete, PolicyName="p", **ghost) == missing
    assert expect("NoSuchEntity", names, **ghost) == missing
    assert expect_status("MalformedPolicyDocument", 400, put, PolicyName="bad",
                         PolicyDocument=doc(allow("GetUser")), **who) == (
        "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."
    )
    assert expect("ValidationError", put, PolicyName="bad name", PolicyDocument=first,
                  **who) == name_pattern_error("bad name", "policyName")

    for n in ["alpha", "mid", "zeta", "old"]:
        delete(PolicyName=n, **who)
    assert names(**who)["PolicyNames"] == []


def test_inline_size_quotas(svc):
    iam = svc.root_client("iam")
    iam.create_group(GroupName="ie-big-group")
    half = sized_doc(2600)
    iam.put_group_policy(GroupName="ie-big-group", PolicyName="one", PolicyDocument=half)
    assert expect_status("LimitExceeded", 409, iam.put_group_policy, GroupName="ie-big-group",
                         PolicyName="two", PolicyDocument=half) == (
        "Maximum policy size of 5120 bytes exceeded for group ie-big-group"
    )
    # Replacing a policy counts its new size, not both.
    iam.put_group_policy(GroupName="ie-big-group", PolicyName="one", PolicyDocument=half)
    iam.put_group_policy(GroupName="ie-big-group", PolicyName="two",
                         PolicyDocument=sized_doc(5120 - 2600))
    assert expect("LimitExceeded", iam.put_group_policy, GroupName="ie-big-group",
                  PolicyName="three", PolicyDocument=doc(allow("iam:GetUser"))) == (
        "Maximum policy size of 5120 bytes exceeded for group ie-big-group"
    )
    iam.create_user(UserName="ie-big-user")
    iam.put_user_policy(UserName="ie-big-user", PolicyName="full", PolicyDocument=sized_doc(2048))
    assert expect("LimitExceeded", iam.put_user_policy, UserName="ie-big-user",
                  PolicyName="more", PolicyDocument=doc(allow("iam:GetUser"))) == (
        "Maximum policy size of 2048 bytes exceeded for user ie-big-user"
    )


# --- Permissions boundaries and tags (§4.6) --------------------------------------------


def test_user_permissions_boundary(svc):
    iam = svc.root_client("iam")
    iam.create_user(UserName="ie-pb-user")
    assert "PermissionsBoundary" not in iam.get_user(UserName="ie-pb-user")["User"]
    arn = iam.create_policy(PolicyName="ie-pb",
                            PolicyDocument=doc(allow("iam:Get*")))["Policy"]["Arn"]
    iam.put_user_permissions_boundary(UserName="ie-pb-user", PermissionsBoundary=arn)
    assert iam.get_user(UserName="ie-pb-user")["User"]["PermissionsBoundary"] == {
        "PermissionsBoundaryType": "PermissionsBoundaryPolicy",
        "PermissionsBoundaryArn": arn,
    }
    policy = iam.get_policy(PolicyArn=arn)["Policy"]
    assert policy["PermissionsBoundaryUsageCount"] == 1 and policy["AttachmentCount"] == 0
    assert expect_status("DeleteConflict", 409, iam.delete_policy, PolicyArn=arn) == (
        "Cannot delete a policy attached to entities."
    )
    # Replaced by an AWS managed one.
    iam.put_user_permissions_boundary(UserName="ie-pb-user", PermissionsBoundary=IAM_READ_ONLY)
    assert iam.get_user(UserName="ie-pb-user")["User"]["PermissionsBoundary"][
        "PermissionsBoundaryArn"] == IAM_READ_ONLY
    assert iam.get_policy(PolicyArn=arn)["Policy"]["PermissionsBoundaryUsageCount"] == 0
    assert iam.get_policy(PolicyArn=IAM_READ_ONLY)["Policy"][
        "PermissionsBoundaryUsageCount"] >= 1
    iam.delete_user_permissions_boundary(UserName="ie-pb-user")
    assert "PermissionsBoundary" not in iam.get_user(UserName="ie-pb-user")["User"]
    # Deleting a boundary that is not there is not an error.
    iam.delete_user_permissions_boundary(UserName="ie-pb-user")
    iam.delete_policy(PolicyArn=arn)

    # A boundary does not block DeleteUser (botocore's DeleteUser list has no boundary); it
    # goes with the user.
    iam.create_user(UserName="ie-pb-leaving")
    iam.put_user_permissions_boundary(UserName="ie-pb-leaving", PermissionsBoundary=READ_ONLY)
    count = iam.get_policy(PolicyArn=READ_ONLY)["Policy"]["PermissionsBoundaryUsageCount"]
    iam.delete_user(UserName="ie-pb-leaving")
    assert iam.get_policy(PolicyArn=READ_ONLY)["Policy"][
        "PermissionsBoundaryUsageCount"] == count - 1

    nope = "arn:aws:iam::aws:policy/Nope"
    assert expect_status("NoSuchEntity", 404, iam.put_user_permissions_boundary,
                         UserName="ie-pb-user", PermissionsBoundary=nope) == (
        f"Policy {nope} does not exist or is not attachable."
    )
    assert expect("NoSuchEntity", iam.put_user_permissions_boundary, UserName="ie-pb-user",
                  PermissionsBoundary=arn) == (
        f"Policy {arn} does not exist or is not attachable."
    )
    # Not a policy ARN at all: tokengate's text (AWS publishes none).
    not_policy = f"arn:aws:iam::{ACCOUNT}:user/ie-pb-user"
    assert expect_status("InvalidInput", 400, iam.put_user_permissions_boundary,
                         UserName="ie-pb-user", PermissionsBoundary=not_policy) == (
        f"ARN {not_policy} is not valid."
    )
    assert expect("NoSuchEntity", iam.put_user_permissions_boundary, UserName="ie-pb-ghost",
                  PermissionsBoundary=IAM_READ_ONLY) == (
        "The user with name ie-pb-ghost cannot be found."
    )
    assert expect("NoSuchEntity", iam.delete_user_permissions_boundary,
                  UserName="ie-pb-ghost") == "The user with name ie-pb-ghost cannot be found."


def test_user_tags(svc):
    iam = svc.root_client("iam")
    created = iam.create_user(UserName="ie-tags-user")["User"]
    assert "Tags" not in created
    iam.tag_user(UserName="ie-tags-user", Tags=[{"Key": "b", "Value": "x y"},
                                                {"Key": "a", "Value": ""}])
    iam.tag_user(UserName="ie-tags-user", Tags=[{"Key": "b", "Value": "z"}])
    tags = iam.list_user_tags(UserName="ie-tags-user")
    assert sorted((t["Key"], t["Value"]) for t in tags["Tags"]) == [("a", ""), ("b", "z")]
    assert tags["IsTruncated"] is False
    page = iam.list_user_tags(UserName="ie-tags-user", MaxItems=1)
    assert len(page["Tags"]) == 1 and page["IsTruncated"] is True
    rest = iam.list_user_tags(UserName="ie-tags-user", MaxItems=1, Marker=page["Marker"])
    assert len(rest["Tags"]) == 1 and rest["IsTruncated"] is False
    assert sorted(t["Key"] for t in iam.get_user(UserName="ie-tags-user")["User"]["Tags"]) == [
        "a", "b"
    ]
    iam.untag_user(UserName="ie-tags-user", TagKeys=["b", "missing"])
    assert iam.list_user_tags(UserName="ie-tags-user")["Tags"] == [{"Key": "a", "Value": ""}]

    for call, extra in [
        (iam.tag_user, {"Tags": [{"Key": "k", "Value": "v"}]}),
        (iam.untag_user, {"TagKeys": ["k"]}),
        (iam.list_user_tags, {}),
    ]:
        assert expect_status("NoSuchEntity", 404, call, UserName="ie-tags-ghost", **extra) == (
            "The user with name ie-tags-ghost cannot be found."
        )
    over = [{"Key": f"k{i}", "Value": "v"} for i in range(50)]
    assert expect_status("LimitExceeded", 409, iam.tag_user, UserName="ie-tags-user",
                         Tags=over) == "Cannot exceed quota for TagsPerUser: 50"
    assert expect("ValidationError", iam.tag_user, UserName="ie-tags-user",
                  Tags=[{"Key": "ok", "Value": "bad*value"}]) == (
        "1 validation error detected: Value 'bad*value' at 'tags.1.member.value' failed to "
        "satisfy constraint: Member must satisfy regular expression pattern: "
        r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*"
    )


# --- Simulator (§4.7) ------------------------------------------------------------------


def test_simulators_page_over_actions_and_resources(svc):
    iam = svc.root_client("iam")
    policy = doc(allow("iam:GetUser", f"arn:aws:iam::{ACCOUNT}:user/a"))
    actions = ["iam:GetUser", "iam:ListUsers", "iam:DeleteUser"]
    resources = [f"arn:aws:iam::{ACCOUNT}:user/a", f"arn:aws:iam::{ACCOUNT}:user/b"]
    full = iam.simulate_custom_policy(PolicyInputList=[policy], ActionNames=actions,
                                      ResourceArns=resources)
    assert full["IsTruncated"] is False and len(full["EvaluationResults"]) == 6
    pairs = [(r["EvalActionName"], r["EvalResourceName"]) for r in full["EvaluationResults"]]
    assert pairs == [(a, r) for a in actions for r in resources]
    assert [r["EvalDecision"] for r in full["EvaluationResults"]] == [
        "allowed"] + ["implicitDeny"] * 5

    got, pages = paginate(iam.simulate_custom_policy, "EvaluationResults",
                          PolicyInputList=[policy], ActionNames=actions,
                          ResourceArns=resources, MaxItems=4)
    assert got == full["EvaluationResults"] and pages == 2
    got = iam.get_paginator("simulate_custom_policy").paginate(
        PolicyInputList=[policy], ActionNames=actions, ResourceArns=resources,
        PaginationConfig={"PageSize": 5},
    ).build_full_result()
    assert got["EvaluationResults"] == full["EvaluationResults"]

    iam.create_user(UserName="ie-sim-user")
    iam.put_user_policy(UserName="ie-sim-user", PolicyName="p", PolicyDocument=policy)
    source = f"arn:aws:iam::{ACCOUNT}:user/ie-sim-user"
    full = iam.simulate_principal_policy(PolicySourceArn=source, ActionNames=actions,
                                         ResourceArns=resources)["EvaluationResults"]
    got, pages = paginate(iam.simulate_principal_policy, "EvaluationResults",
                          PolicySourceArn=source, ActionNames=actions, ResourceArns=resources,
                          MaxItems=1)
    assert got == full and pages == 6
    assert full[0]["EvalDecision"] == "allowed"
    assert full[0]["MatchedStatements"][0]["SourcePolicyId"] == "p"
    assert full[0]["MatchedStatements"][0]["SourcePolicyType"] == "user"


def test_simulate_principal_policy_for_a_group(svc):
    iam = svc.root_client("iam")
    iam.create_group(GroupName="ie-sim-group")
    iam.put_group_policy(GroupName="ie-sim-group", PolicyName="deny-delete",
                         PolicyDocument=doc(deny("iam:DeleteUser")))
    iam.attach_group_policy(GroupName="ie-sim-group", PolicyArn=IAM_READ_ONLY)
    local = iam.create_policy(
        PolicyName="ie-sim-local",
        PolicyDocument=doc(allow("iam:CreateUser",
                                 Condition={"Bool": {"aws:MultiFactorAuthPresent": "true"}})),
    )["Policy"]["Arn"]
    iam.attach_group_policy(GroupName="ie-sim-group", PolicyArn=local)
    group_arn = f"arn:aws:iam::{ACCOUNT}:group/ie-sim-group"
    r = iam.simulate_principal_policy(
        PolicySourceArn=group_arn,
        ActionNames=["iam:GetUser", "iam:DeleteUser", "iam:CreateUser", "iam:CreateGroup"],
        ContextEntries=[{"ContextKeyName": "aws:MultiFactorAuthPresent",
                         "ContextKeyValues": ["true"], "ContextKeyType": "boolean"}],
    )["EvaluationResults"]
    by_action = {x["EvalActionName"]: x for x in r}
    assert {a: x["EvalDecision"] for a, x in by_action.items()} == {
        "iam:GetUser": "allowed",
        "iam:DeleteUser": "explicitDeny",
        "iam:CreateUser": "allowed",
        "iam:CreateGroup": "implicitDeny",
    }
    assert [(m["SourcePolicyId"], m["SourcePolicyType"])
            for m in by_action["iam:DeleteUser"]["MatchedStatements"]] == [
        ("deny-delete", "group")
    ]
    assert [m["SourcePolicyType"] for m in by_action["iam:GetUser"]["MatchedStatements"]] == [
        "aws-managed"
    ]
    assert [m["SourcePolicyType"] for m in by_action["iam:CreateUser"]["MatchedStatements"]] == [
        "user-managed"
    ]
    assert expect_status("NoSuchEntity", 404, iam.simulate_principal_policy,
                         PolicySourceArn=f"arn:aws:iam::{ACCOUNT}:group/ie-sim-none",
                         ActionNames=["iam:GetUser"]) == (
        "The group with name ie-sim-none cannot be found."
    )

    # A member's simulation includes the group's policies.
    iam.create_user(UserName="ie-sim-member")
    iam.add_user_to_group(GroupName="ie-sim-group", UserName="ie-sim-member")
    r = iam.simulate_principal_policy(
        PolicySourceArn=f"arn:aws:iam::{ACCOUNT}:user/ie-sim-member",
        ActionNames=["iam:GetUser", "iam:DeleteUser"],
    )["EvaluationResults"]
    assert [x["EvalDecision"] for x in r] == ["allowed", "explicitDeny"]


def test_get_context_keys_for_principal_policy(svc):
    iam = svc.root_client("iam")
    iam.create_user(UserName="ie-ctx-user")
    iam.put_user_policy(
        UserName="ie-ctx-user", PolicyName="own",
        PolicyDocument=doc(allow("iam:GetUser", "arn:aws:iam::*:user/${aws:username}")),
    )
    iam.create_group(GroupName="ie-ctx-group")
    iam.put_group_policy(
        GroupName="ie-ctx-group", PolicyName="mfa",
        PolicyDocument=doc(allow("iam:*", Condition={
            "Bool": {"aws:MultiFactorAuthPresent": "true"},
            "IpAddress": {"aws:SourceIp": "10.0.0.0/8"},
        })),
    )
    iam.add_user_to_group(GroupName="ie-ctx-group", UserName="ie-ctx-user")
    user_arn = f"arn:aws:iam::{ACCOUNT}:user/ie-ctx-user"
    keys = iam.get_context_keys_for_principal_policy(PolicySourceArn=user_arn)
    assert keys["ContextKeyNames"] == [
        "aws:MultiFactorAuthPresent", "aws:SourceIp", "aws:username"
    ]
    extra = doc(allow("iam:*", Condition={"StringEquals": {"aws:PrincipalTag/team": "x"}}))
    keys = iam.get_context_keys_for_principal_policy(PolicySourceArn=user_arn,
                                                     PolicyInputList=[extra])
    assert keys["ContextKeyNames"] == [
        "aws:MultiFactorAuthPresent", "aws:PrincipalTag/team", "aws:SourceIp", "aws:username"
    ]
    group_keys = iam.get_context_keys_for_principal_policy(
        PolicySourceArn=f"arn:aws:iam::{ACCOUNT}:group/ie-ctx-group")
    assert group_keys["ContextKeyNames"] == ["aws:MultiFactorAuthPresent", "aws:SourceIp"]
    assert expect("NoSuchEntity", iam.get_context_keys_for_principal_policy,
                  PolicySourceArn=f"arn:aws:iam::{ACCOUNT}:user/ie-ctx-none") == (
        "The user with name ie-ctx-none cannot be found."
    )


# --- MalformedPolicyDocument, one case per message class of §4.9 ----------------------

IAM_PATH = (
    'IAM resource path must either be "*" or start with user/, federated-user/, role/, '
    "group/, instance-profile/, mfa/, server-certificate/, policy/, sms-mfa/, saml-provider/, "
    "oidc-provider/, report/, access-report/."
)

MALFORMED = [
    ("not-json", "{not json", "Syntax errors in policy."),
    ("not-object", json.dumps([allow("iam:GetUser")]), "Syntax errors in policy."),
    ("unknown-key", json.dumps({"Version": "2012-10-17", "Statement": [allow("iam:GetUser")],
                                "Extra": 1}), "Syntax errors in policy."),
    ("empty-statement", doc(), "Syntax errors in policy."),
    ("no-effect", doc({"Action": "iam:GetUser", "Resource": "*"}), "Syntax errors in policy."),
    ("action-and-notaction", doc({**allow("iam:GetUser"), "NotAction": "iam:ListUsers"}),
     "Syntax errors in policy."),
    ("bad-version", doc(allow("iam:GetUser"), version="2013-01-01"), "Syntax errors in policy."),
    ("no-version", json.dumps({"Statement": [allow("iam:GetUser")]}),
     "Policy document must be version 2012-10-17 or greater."),
    ("version-2008", doc(allow("iam:GetUser"), version="2008-10-17"),
     "Policy document must be version 2012-10-17 or greater."),
    ("effect-casing", doc({"Effect": "allow", "Action": "iam:GetUser", "Resource": "*"}),
     "The policy failed legacy parsing"),
    ("bad-date", doc(allow("iam:GetUser", Condition={
        "DateGreaterThan": {"aws:CurrentTime": "2019-13-45T99:00:00Z"}})),
     "The policy failed legacy parsing"),
    ("no-actions", doc({"Effect": "Allow", "Resource": "*"}),
     "Policy statement must contain actions."),
    ("empty-actions", doc(allow([])), "Policy statement must contain actions."),
    ("no-resources", doc({"Effect": "Allow", "Action": "iam:GetUser"}),
     "Policy statement must contain resources."),
    ("no-vendor", doc(allow("GetUser")),
     "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."),
    ("condition-no-vendor", doc(allow("iam:GetUser", Condition={
        "StringEquals": {"username": "x"}})),
     "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."),
    ("two-colons", doc(allow("iam:Get:User")), "Actions/Condition can contain only one colon."),
    ("bad-vendor", doc(allow("a a:GetUser")), "Vendor a a is not valid"),
    ("not-arn", doc(allow("iam:GetUser", "invalid resource")),
     'Resource invalid resource must be in ARN format or "*".'),
    ("bad-partition", doc(allow("iam:GetUser", "arn:b:c:d:e:f:g:h")),
     'Partition "b" is not valid for resource "arn:b:c:d:e:f:g:h".'),
    ("vendor-regex", doc(allow("iam:GetUser", "arn:aws:s*:::bucket")),
     "Resource vendor must be fully qualified and cannot contain regexes."),
    ("iam-region", doc(allow("iam:GetUser", "arn:aws:iam:us-east-1::example_bucket")),
     "IAM resource arn:aws:iam:us-east-1::example_bucket cannot contain region information."),
    ("s3-region", doc(allow("s3:GetObject", "arn:aws:s3:us-east-1::example_bucket")),
     "Resource arn:aws:s3:us-east-1::example_bucket can not contain region information."),
    ("iam-path", doc(allow("iam:GetUser", f"arn:aws:iam::{ACCOUNT}:person/x")), IAM_PATH),
    ("sid-not-unique", doc(allow("iam:GetUser", Sid="One"), allow("iam:ListUsers", Sid="One")),
     "Statement IDs (SID) in a single policy must be unique."),
    ("sid-not-alphanumeric", doc(allow("iam:GetUser", Sid="not_ok")),
     "Statement IDs (SID) must be alpha-numeric. Check that your input satisfies the regular "
     "expression [0-9A-Za-z]*"),
    ("principal", doc({**allow("iam:GetUser"), "Principal": {"AWS": "*"}}),
     "Policy document should not specify a principal."),
]


@pytest.mark.parametrize("document,message", [m[1:] for m in MALFORMED],
                         ids=[m[0] for m in MALFORMED])
def test_malformed_policy_document_classes(svc, document, message):
    iam = svc.root_client("iam")
    assert expect_status("MalformedPolicyDocument", 400, iam.create_policy,
                         PolicyName="ie-malformed", PolicyDocument=document) == message


def test_malformed_through_other_entry_points(svc):
    iam = svc.root_client("iam")
    iam.create_user(UserName="ie-mal-user")
    iam.create_group(GroupName="ie-mal-group")
    arn = iam.create_policy(PolicyName="ie-mal-policy",
                            PolicyDocument=doc(allow("iam:GetUser")))["Policy"]["Arn"]
    by_message = {m[2]: m[1] for m in MALFORMED}
    # Every class except the managed-only version rule, through PutUserPolicy.
    for message, document in by_message.items():
        if message.startswith("Policy document must be version"):
            continue
        assert expect("MalformedPolicyDocument", iam.put_user_policy, UserName="ie-mal-user",
                      PolicyName="bad", PolicyDocument=document) == message
    assert expect("MalformedPolicyDocument", iam.put_group_policy, GroupName="ie-mal-group",
                  PolicyName="bad", PolicyDocument=doc(allow("iam:GetUser", "nope"))) == (
        'Resource nope must be in ARN format or "*".'
    )
    assert expect("MalformedPolicyDocument", iam.create_policy_version, PolicyArn=arn,
                  PolicyDocument=doc(allow("iam:GetUser"), version="2008-10-17")) == (
        "Policy document must be version 2012-10-17 or greater."
    )
    assert iam.list_user_policies(UserName="ie-mal-user")["PolicyNames"] == []
    assert [v["VersionId"] for v in iam.list_policy_versions(PolicyArn=arn)["Versions"]] == [
        "v1"
    ]
