"""Last used and the access advisor through boto3 and the AWS CLI against the real binary
(issue 12 points 2 and 3; portal.md section 2): GetAccessKeyLastUsed before and after use
(AWS's N/A conventions), Generate/GetServiceLastAccessedDetails for a user, a group, a role
and a policy at both granularities, GetAccountSummary's SummaryMap,
GetAccountAuthorizationDetails with its paginator, and the account alias.

The burst of 10 000 requests and its write count are in crates/server/tests/usage.rs (the
counter is in-process)."""

import json

import boto3
import pytest
from botocore.config import Config

from conftest import Service
from test_foundation import aws_cli
from test_iam_entities import expect_status
from test_policies import ACCOUNT

ALLOW_ALL_IAM_READ = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["iam:Get*", "iam:List*"], "Resource": "*"}],
})


@pytest.fixture(scope="module")
def adv():
    s = Service({"TOKENGATE_MFA_REQUIRED": "false"})
    yield s
    s.stop()


def client(svc, service, key, region):
    return boto3.client(
        service, endpoint_url=svc.url, region_name=region,
        aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
        config=Config(retries={"max_attempts": 1}),
    )


def job(iam, arn, granularity="SERVICE_LEVEL"):
    job_id = iam.generate_service_last_accessed_details(Arn=arn, Granularity=granularity)["JobId"]
    assert len(job_id) == 36
    got = iam.get_service_last_accessed_details(JobId=job_id)
    assert got["JobStatus"] == "COMPLETED"
    assert got["JobType"] == granularity
    assert got["JobCreationDate"] <= got["JobCompletionDate"]
    return {s["ServiceNamespace"]: s for s in got["ServicesLastAccessed"]}


def test_last_used_and_access_advisor(adv):
    iam = adv.root_client("iam")
    iam.create_user(UserName="adv-user")
    iam.create_group(GroupName="adv-group")
    iam.add_user_to_group(GroupName="adv-group", UserName="adv-user")
    policy_arn = iam.create_policy(PolicyName="adv-read", PolicyDocument=ALLOW_ALL_IAM_READ)[
        "Policy"]["Arn"]
    iam.attach_group_policy(GroupName="adv-group", PolicyArn=policy_arn)
    key = iam.create_access_key(UserName="adv-user")["AccessKey"]

    # Never used: no LastUsedDate, N/A for the service and the region.
    got = iam.get_access_key_last_used(AccessKeyId=key["AccessKeyId"])
    assert got["UserName"] == "adv-user"
    assert got["AccessKeyLastUsed"] == {"ServiceName": "N/A", "Region": "N/A"}

    client(adv, "sts", key, "eu-west-1").get_caller_identity()
    user_iam = client(adv, "iam", key, "us-east-1")
    user_iam.list_users()
    expect_status("AccessDenied", 403, user_iam.create_user, UserName="nope")

    got = iam.get_access_key_last_used(AccessKeyId=key["AccessKeyId"])["AccessKeyLastUsed"]
    # The last use was IAM (ListUsers, CreateUser), signed for us-east-1.
    assert (got["ServiceName"], got["Region"]) == ("iam", "us-east-1")
    assert got["LastUsedDate"].tzinfo is not None

    user_arn = f"arn:aws:iam::{ACCOUNT}:user/adv-user"
    services = job(iam, user_arn)
    assert sorted(services) == ["iam", "sts"]
    assert services["iam"]["ServiceName"] == "AWS Identity and Access Management"
    assert services["sts"]["LastAuthenticatedEntity"] == user_arn
    assert services["sts"]["LastAuthenticatedRegion"] == "eu-west-1"
    assert services["iam"]["TotalAuthenticatedEntities"] == 1
    assert "TrackedActionsLastAccessed" not in services["iam"]

    services = job(iam, user_arn, "ACTION_LEVEL")
    actions = {a["ActionName"]: a for a in services["iam"]["TrackedActionsLastAccessed"]}
    # A refused attempt is an attempt, as in AWS.
    assert {"ListUsers", "CreateUser"} <= set(actions)
    assert actions["ListUsers"]["LastAccessedEntity"] == user_arn
    assert [a["ActionName"] for a in services["sts"]["TrackedActionsLastAccessed"]] \
        == ["GetCallerIdentity"]

    # The group and the policy report their member's use.
    for arn in (f"arn:aws:iam::{ACCOUNT}:group/adv-group", policy_arn):
        services = job(iam, arn)
        assert services["iam"]["LastAuthenticatedEntity"] == user_arn
        assert services["iam"]["TotalAuthenticatedEntities"] == 1

    # A role nobody assumed: both services listed, never authenticated.
    iam.create_role(RoleName="adv-role", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                       "Action": "sts:AssumeRole"}],
    }))
    services = job(iam, f"arn:aws:iam::{ACCOUNT}:role/adv-role")
    assert sorted(services) == ["iam", "sts"]
    assert all("LastAuthenticated" not in s for s in services.values())
    assert all(s["TotalAuthenticatedEntities"] == 0 for s in services.values())

    expect_status("NoSuchEntity", 404, iam.generate_service_last_accessed_details,
                  Arn=f"arn:aws:iam::{ACCOUNT}:user/nobody-here")

    # The AWS CLI reads the same job.
    out = aws_cli(adv, "iam", "generate-service-last-accessed-details", "--arn", user_arn)
    assert out.returncode == 0, out.stderr
    job_id = json.loads(out.stdout)["JobId"]
    out = aws_cli(adv, "iam", "get-service-last-accessed-details", "--job-id", job_id)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["JobStatus"] == "COMPLETED"


def test_account_summary_details_and_alias(adv):
    iam = adv.root_client("iam")
    iam.create_user(UserName="sum-user")
    iam.put_user_policy(UserName="sum-user", PolicyName="inline", PolicyDocument=ALLOW_ALL_IAM_READ)
    summary = iam.get_account_summary()["SummaryMap"]
    assert len(summary) == 34
    users = len(iam.list_users()["Users"])
    assert summary["Users"] == users
    assert summary["AccountAccessKeysPresent"] == 1
    assert summary["AccessKeysPerUserQuota"] == 2
    assert all(isinstance(v, int) for v in summary.values())

    details = iam.get_account_authorization_details()
    by_name = {u["UserName"]: u for u in details["UserDetailList"]}
    inline = by_name["sum-user"]["UserPolicyList"][0]
    # Sent URL-encoded, as AWS sends them; boto3 decodes policy documents to a dict.
    assert inline["PolicyDocument"] == json.loads(ALLOW_ALL_IAM_READ)
    # The paginator follows Marker page by page to the same entities.
    pages = list(iam.get_paginator("get_account_authorization_details").paginate(
        Filter=["User", "Group"], PaginationConfig={"PageSize": 1}))
    names = [u["UserName"] for p in pages for u in p["UserDetailList"]]
    assert names == sorted(by_name)
    assert len(pages) >= 2

    # One alias per account, AWS's pattern.
    assert iam.list_account_aliases()["AccountAliases"] == []
    for bad in ("-corp", "corp-", "my--corp"):
        expect_status("ValidationError", 400, iam.create_account_alias, AccountAlias=bad)
    iam.create_account_alias(AccountAlias="example-corp")
    assert iam.list_account_aliases()["AccountAliases"] == ["example-corp"]
    out = aws_cli(adv, "iam", "list-account-aliases")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["AccountAliases"] == ["example-corp"]
    expect_status("NoSuchEntity", 404, iam.delete_account_alias, AccountAlias="other-corp")
    iam.delete_account_alias(AccountAlias="example-corp")
    assert iam.list_account_aliases()["AccountAliases"] == []
