"""Session tags, transitive tags and SourceIdentity across AssumeRole chains (policy.md §5.1),
and GetFederationToken (§5.2), with boto3 and the AWS CLI against the real binary."""

import json

import pytest
from botocore.exceptions import ClientError

import test_foundation
from conftest import Service
from test_assume_role import ACCOUNT, allow, error_of, role_arn, session_clients, user_with_key

DUPLICATE = "Duplicate tag keys found. Please note that Tag keys are case insensitive."
NOT_A_TAG = "The specified transitive tag key must be included in the requested tags."
CONFLICT = ("One of the specified transitive tag keys can't be set because it conflicts with a "
            "transitive tag key from the calling session.")
MFA_REQUIRED = "MultiFactorAuthentication is required"


def trust(principal, actions, condition=None):
    statement = {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": actions}
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def read_users_if_tag(key, value):
    """iam:ListUsers only for principals tagged key=value."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "iam:ListUsers", "Resource": "*",
        "Condition": {"StringEquals": {f"aws:PrincipalTag/{key}": value}}}]})


def test_session_tags_need_tag_session_and_become_principal_tags(svc):
    iam = svc.root_client("iam")
    user = f"arn:aws:iam::{ACCOUNT}:user/tina"
    key = user_with_key(svc, "tina")
    iam.create_role(RoleName="no-tags", AssumeRolePolicyDocument=trust(user, "sts:AssumeRole"))
    iam.create_role(RoleName="tagged",
                    AssumeRolePolicyDocument=trust(user, ["sts:AssumeRole", "sts:TagSession"]),
                    Tags=[{"Key": "team", "Value": "red"}])
    iam.put_role_policy(RoleName="tagged", PolicyName="p",
                        PolicyDocument=read_users_if_tag("team", "blue"))
    sts = svc.client("sts", *key)
    tags = [{"Key": "Team", "Value": "blue"}]

    # Tags without sts:TagSession in the trust policy: refused, naming the action.
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=role_arn("no-tags"), RoleSessionName="tt", Tags=tags)
    code, message = error_of(e)
    assert code == "AccessDenied"
    assert message.startswith(f"User: {user} is not authorized to perform: sts:TagSession on "
                              f"resource: {role_arn('no-tags')}"), message
    # Without tags the same role is assumed.
    sts.assume_role(RoleArn=role_arn("no-tags"), RoleSessionName="tt")

    # The session tag overrides the role's own tag of the same key (case-insensitively).
    creds = sts.assume_role(RoleArn=role_arn("tagged"), RoleSessionName="tt", Tags=tags)
    assert creds["PackedPolicySize"] > 0
    _, role_iam = session_clients(svc, creds)
    assert role_iam.list_users()["Users"]
    # Without the session tag the role's own tag (red) decides: refused.
    plain = sts.assume_role(RoleArn=role_arn("tagged"), RoleSessionName="tt")
    _, plain_iam = session_clients(svc, plain)
    with pytest.raises(ClientError) as e:
        plain_iam.list_users()
    assert error_of(e)[0] == "AccessDenied"

    # AWS's validation texts.
    for bad, text in (
        (dict(Tags=[{"Key": "a", "Value": "1"}, {"Key": "A", "Value": "2"}]), DUPLICATE),
        (dict(Tags=tags, TransitiveTagKeys=["other"]), NOT_A_TAG),
    ):
        with pytest.raises(ClientError) as e:
            sts.assume_role(RoleArn=role_arn("tagged"), RoleSessionName="tt", **bad)
        assert error_of(e) == ("InvalidParameterValue", text)


def test_a_transitive_tag_survives_a_second_hop_and_cannot_be_replaced(svc):
    iam = svc.root_client("iam")
    key = user_with_key(svc, "hopper")
    user = f"arn:aws:iam::{ACCOUNT}:user/hopper"
    iam.create_role(RoleName="hop1",
                    AssumeRolePolicyDocument=trust(user, ["sts:AssumeRole", "sts:TagSession"]))
    iam.put_role_policy(RoleName="hop1", PolicyName="p",
                        PolicyDocument=allow(["sts:AssumeRole", "sts:TagSession"],
                                             role_arn("hop2")))
    hop1_arn = role_arn("hop1")
    iam.create_role(RoleName="hop2",
                    AssumeRolePolicyDocument=trust(hop1_arn, ["sts:AssumeRole", "sts:TagSession"]))
    iam.put_role_policy(RoleName="hop2", PolicyName="p",
                        PolicyDocument=read_users_if_tag("project", "apollo"))

    sts = svc.client("sts", *key)
    first = sts.assume_role(RoleArn=hop1_arn, RoleSessionName="one",
                            Tags=[{"Key": "project", "Value": "apollo"},
                                  {"Key": "cost", "Value": "42"}],
                            TransitiveTagKeys=["project"])
    hop1_sts, _ = session_clients(svc, first)
    second = hop1_sts.assume_role(RoleArn=role_arn("hop2"), RoleSessionName="two")
    _, hop2_iam = session_clients(svc, second)
    assert hop2_iam.list_users()["Users"]

    # A non-transitive tag does not pass on; a transitive one cannot be replaced.
    with pytest.raises(ClientError) as e:
        hop1_sts.assume_role(RoleArn=role_arn("hop2"), RoleSessionName="two",
                             Tags=[{"Key": "PROJECT", "Value": "gemini"}])
    assert error_of(e) == ("InvalidParameterValue", CONFLICT)
    again = hop1_sts.assume_role(RoleArn=role_arn("hop2"), RoleSessionName="two",
                                 Tags=[{"Key": "cost", "Value": "7"}])
    assert again["AssumedRoleUser"]["Arn"].endswith("assumed-role/hop2/two")


def test_source_identity_is_set_once_and_sticks(svc):
    iam = svc.root_client("iam")
    key = user_with_key(svc, "sid")
    user = f"arn:aws:iam::{ACCOUNT}:user/sid"
    iam.create_role(RoleName="plain-si", AssumeRolePolicyDocument=trust(user, "sts:AssumeRole"))
    iam.create_role(
        RoleName="si1",
        AssumeRolePolicyDocument=trust(
            user, ["sts:AssumeRole", "sts:SetSourceIdentity"],
            {"StringLike": {"sts:SourceIdentity": "*@example.com"}}))
    iam.put_role_policy(RoleName="si1", PolicyName="p",
                        PolicyDocument=allow(["sts:AssumeRole", "sts:SetSourceIdentity"]))
    si1 = role_arn("si1")
    iam.create_role(RoleName="si2-no-set", AssumeRolePolicyDocument=trust(si1, "sts:AssumeRole"))
    iam.create_role(RoleName="si2",
                    AssumeRolePolicyDocument=trust(si1, ["sts:AssumeRole",
                                                         "sts:SetSourceIdentity"]))
    iam.put_role_policy(RoleName="si2", PolicyName="p", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "iam:ListRoles", "Resource": "*",
            "Condition": {"StringEquals": {"aws:SourceIdentity": "ann@example.com"}}}]}))
    sts = svc.client("sts", *key)

    # Setting one needs sts:SetSourceIdentity in the trust policy.
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=role_arn("plain-si"), RoleSessionName="ss",
                        SourceIdentity="ann@example.com")
    assert "is not authorized to perform: sts:SetSourceIdentity" in error_of(e)[1]
    # The trust policy's condition on sts:SourceIdentity decides.
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=si1, RoleSessionName="ss", SourceIdentity="ann@elsewhere.org")
    assert error_of(e)[0] == "AccessDenied"
    first = sts.assume_role(RoleArn=si1, RoleSessionName="ss", SourceIdentity="ann@example.com")
    assert first["SourceIdentity"] == "ann@example.com"

    hop_sts, _ = session_clients(svc, first)
    # It cannot be changed on the chain.
    with pytest.raises(ClientError) as e:
        hop_sts.assume_role(RoleArn=role_arn("si2"), RoleSessionName="ss",
                            SourceIdentity="bob@example.com")
    code, message = error_of(e)
    assert code == "InvalidParameterValue" and "cannot be changed" in message
    # Carried on, it needs sts:SetSourceIdentity in the next trust policy too.
    with pytest.raises(ClientError) as e:
        hop_sts.assume_role(RoleArn=role_arn("si2-no-set"), RoleSessionName="ss")
    assert "is not authorized to perform: sts:SetSourceIdentity" in error_of(e)[1]
    second = hop_sts.assume_role(RoleArn=role_arn("si2"), RoleSessionName="ss")
    assert second["SourceIdentity"] == "ann@example.com"
    _, si2_iam = session_clients(svc, second)
    assert si2_iam.list_roles()["Roles"]

    # Validation: not aws:-prefixed, 2..64 of [\w+=,.@-].
    for bad in ("aws:me", "has space", "a" * 65):
        with pytest.raises(ClientError) as e:
            sts.assume_role(RoleArn=si1, RoleSessionName="ss", SourceIdentity=bad)
        assert error_of(e)[0] == "ValidationError", bad


def test_aws_cli_passes_tags_and_transitive_keys(svc):
    iam = svc.root_client("iam")
    key = user_with_key(svc, "clitags")
    iam.create_role(RoleName="cli-tags", AssumeRolePolicyDocument=trust(
        f"arn:aws:iam::{ACCOUNT}:user/clitags", ["sts:AssumeRole", "sts:TagSession"]))
    out = test_foundation.aws_cli(
        svc, "sts", "assume-role", "--role-arn", role_arn("cli-tags"),
        "--role-session-name", "cc", "--tags", "Key=team,Value=blue",
        "--transitive-tag-keys", "team", key=key)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["PackedPolicySize"] > 0


def test_get_federation_token(svc):
    iam = svc.root_client("iam")
    fed = user_with_key(svc, "feddy", allow("sts:GetFederationToken"))
    nobody = user_with_key(svc, "nofed")
    sts = svc.client("sts", *fed)

    # Without a session policy: a session with no permissions.
    bare = sts.get_federation_token(Name="bare-fed", DurationSeconds=900)
    assert bare["FederatedUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:federated-user/bare-fed"
    assert bare["FederatedUser"]["FederatedUserId"] == f"{ACCOUNT}:bare-fed"
    assert bare["PackedPolicySize"] == 0
    bare_sts, bare_iam = session_clients(svc, bare)
    assert bare_sts.get_caller_identity()["Arn"] == bare["FederatedUser"]["Arn"]
    with pytest.raises(ClientError) as e:
        bare_iam.list_users()
    code, message = error_of(e)
    assert code == "AccessDenied" and "federated" in message

    # With a session policy: still no IAM or STS call but GetCallerIdentity (AWS's rule).
    iam.put_user_policy(UserName="feddy", PolicyName="read", PolicyDocument=allow("iam:List*"))
    scoped = sts.get_federation_token(Name="scoped", Policy=allow("iam:ListUsers"),
                                      PolicyArns=[{"arn": "arn:aws:iam::aws:policy/"
                                                          "IAMReadOnlyAccess"}])
    assert scoped["PackedPolicySize"] > 0
    scoped_sts, scoped_iam = session_clients(svc, scoped)
    assert scoped_sts.get_caller_identity()["UserId"] == f"{ACCOUNT}:scoped"
    with pytest.raises(ClientError) as e:
        scoped_iam.list_users()
    assert error_of(e)[0] == "AccessDenied"
    for call in (lambda: scoped_sts.get_session_token(),
                 lambda: scoped_sts.get_federation_token(Name="again")):
        with pytest.raises(ClientError) as e:
            call()
        assert error_of(e)[0] == "AccessDenied"

    # The identity policy must allow sts:GetFederationToken.
    with pytest.raises(ClientError) as e:
        svc.client("sts", *nobody).get_federation_token(Name="nope")
    assert "is not authorized to perform: sts:GetFederationToken" in error_of(e)[1]
    # Validation: Name 2..32; an unknown policy ARN.
    with pytest.raises(ClientError) as e:
        sts.get_federation_token(Name="has space")
    assert error_of(e)[0] == "ValidationError"
    with pytest.raises(ClientError) as e:
        sts.get_federation_token(Name="xx", PolicyArns=[{"arn": f"arn:aws:iam::{ACCOUNT}:"
                                                               "policy/missing"}])
    assert error_of(e)[0] == "ValidationError"

    # Root: clamped to an hour, not refused.
    root = svc.root_client("sts").get_federation_token(Name="rooted", DurationSeconds=7200)
    lifetime = root["Credentials"]["Expiration"].timestamp() - bare["Credentials"][
        "Expiration"].timestamp()
    assert 2000 < lifetime < 3000, lifetime  # 3600 s vs 900 s, issued moments apart

    # A federated session ends with its user.
    iam.delete_user_policy(UserName="feddy", PolicyName="p")
    iam.delete_user_policy(UserName="feddy", PolicyName="read")
    for k in iam.list_access_keys(UserName="feddy")["AccessKeyMetadata"]:
        iam.delete_access_key(UserName="feddy", AccessKeyId=k["AccessKeyId"])
    iam.delete_user(UserName="feddy")
    with pytest.raises(ClientError) as e:
        bare_sts.get_caller_identity()
    assert error_of(e)[0] == "InvalidClientTokenId"


def test_get_federation_token_under_mfa_required():
    s = Service()  # mfa.required = true, the default
    try:
        key = user_with_key(s, "fedmfa", allow("sts:GetFederationToken"))
        with pytest.raises(ClientError) as e:
            s.client("sts", *key).get_federation_token(Name="fm")
        code, message = error_of(e)
        assert code == "AccessDenied" and message.startswith(MFA_REQUIRED), message
    finally:
        s.stop()


def test_role_last_used(svc):
    import time

    from conftest import REGION

    iam = svc.root_client("iam")
    key = user_with_key(svc, "lastuse")
    iam.create_role(RoleName="used-role", AssumeRolePolicyDocument=trust(
        f"arn:aws:iam::{ACCOUNT}:user/lastuse", "sts:AssumeRole"))
    assert "LastUsedDate" not in iam.get_role(RoleName="used-role")["Role"]["RoleLastUsed"]
    svc.client("sts", *key).assume_role(RoleArn=role_arn("used-role"), RoleSessionName="uu")
    deadline = time.monotonic() + 5
    while True:  # recorded off the request path
        last = iam.get_role(RoleName="used-role")["Role"]["RoleLastUsed"]
        if "LastUsedDate" in last or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert last["Region"] == REGION, last
    assert abs(last["LastUsedDate"].timestamp() - time.time()) < 60, last


def test_trust_policies_bind_principals_to_their_unique_ids(svc):
    """policy.md §8.5: a user deleted and created again under the same name is another
    principal; the role trusts the old one (shown by its unique id), not the new one."""
    iam = svc.root_client("iam")
    arn = f"arn:aws:iam::{ACCOUNT}:user/phoenix"
    key = user_with_key(svc, "phoenix")
    old_id = iam.get_user(UserName="phoenix")["User"]["UserId"]
    iam.create_role(RoleName="bound", AssumeRolePolicyDocument=trust(arn, "sts:AssumeRole"))
    svc.client("sts", *key).assume_role(RoleArn=role_arn("bound"), RoleSessionName="p1")
    doc = iam.get_role(RoleName="bound")["Role"]["AssumeRolePolicyDocument"]
    assert doc["Statement"][0]["Principal"]["AWS"] == arn

    iam.delete_access_key(UserName="phoenix", AccessKeyId=key[0])
    iam.delete_user(UserName="phoenix")
    doc = iam.get_role(RoleName="bound")["Role"]["AssumeRolePolicyDocument"]
    assert doc["Statement"][0]["Principal"]["AWS"] == old_id

    reborn = user_with_key(svc, "phoenix")
    assert iam.get_user(UserName="phoenix")["User"]["UserId"] != old_id
    with pytest.raises(ClientError) as e:
        svc.client("sts", *reborn).assume_role(RoleArn=role_arn("bound"), RoleSessionName="p2")
    assert error_of(e)[0] == "AccessDenied"
    assert iam.list_roles()["Roles"][0]["AssumeRolePolicyDocument"] is not None
    # Saving the policy again binds the ARN to the new user.
    iam.update_assume_role_policy(RoleName="bound", PolicyDocument=trust(arn, "sts:AssumeRole"))
    svc.client("sts", *reborn).assume_role(RoleArn=role_arn("bound"), RoleSessionName="p3")
