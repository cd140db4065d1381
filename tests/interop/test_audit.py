"""The audit trail (issue 12 point 5) with real clients: boto3's CloudTrail client and
paginator and `aws cloudtrail lookup-events` against tokengate's LookupEvents (JSON 1.1).

alice logs in with a virtual TOTP device (GetSessionToken): one refused wrong code, then
the right one. Her events carry mfaAuthenticated "true" and the MFA method, the refusal
its errorCode; pages follow NextToken; and no event holds a code, a secret key, a session
token, a TOTP seed or a password that passed through the service in this module."""

import datetime
import http.client
import json
import re
import urllib.parse

import pyotp
import pytest
from botocore.exceptions import ClientError

from conftest import Service
from test_foundation import aws_cli
from test_totp import settled_now

ACCOUNT = "000000000000"
PASSWORD = "Audit-Trail-Pa55word!"


@pytest.fixture(scope="module")
def audit_svc():
    s = Service()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def scenario(audit_svc):
    """alice with a key and a TOTP device; a refused and an accepted login; a login profile.
    Returns every secret the service saw."""
    iam = audit_svc.root_client("iam")
    iam.create_user(UserName="alice")
    key = iam.create_access_key(UserName="alice")["AccessKey"]
    dev = iam.create_virtual_mfa_device(VirtualMFADeviceName="alice-phone")["VirtualMFADevice"]
    seed = dev["Base32StringSeed"].decode()
    totp = pyotp.TOTP(seed)
    now = settled_now()
    c1, c2 = totp.at(now - 120), totp.at(now - 90)
    iam.enable_mfa_device(UserName="alice", SerialNumber=dev["SerialNumber"],
                          AuthenticationCode1=c1, AuthenticationCode2=c2)
    sts = audit_svc.client("sts", key["AccessKeyId"], key["SecretAccessKey"])
    right = totp.at(now)
    wrong = f"{(int(right) + 500000) % 1000000:06d}"
    with pytest.raises(ClientError) as refused:
        sts.get_session_token(SerialNumber=dev["SerialNumber"], TokenCode=wrong)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    creds = sts.get_session_token(SerialNumber=dev["SerialNumber"], TokenCode=right)["Credentials"]
    iam.create_login_profile(UserName="alice", Password=PASSWORD)
    # A few more of alice's own calls, so that paging has something to page.
    session_sts = audit_svc.client("sts", creds["AccessKeyId"], creds["SecretAccessKey"],
                                   creds["SessionToken"])
    for _ in range(3):
        session_sts.get_caller_identity()
    return {
        "key": key,
        "serial": dev["SerialNumber"],
        "codes": [c1, c2, right, wrong],
        "secrets": [
            seed, key["SecretAccessKey"], creds["SecretAccessKey"], creds["SessionToken"],
            audit_svc.root["SecretAccessKey"], PASSWORD,
        ],
        "session_key": creds["AccessKeyId"],
        "totp": totp,
        "now": now,
    }


def ct(audit_svc):
    return audit_svc.root_client("cloudtrail")


def alice_filter():
    return [{"AttributeKey": "Username", "AttributeValue": "alice"}]


def test_alice_login_and_refusal_with_boto3(audit_svc, scenario):
    events = ct(audit_svc).lookup_events(
        LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "GetSessionToken"}],
    )["Events"]
    assert [e["EventName"] for e in events] == ["GetSessionToken", "GetSessionToken"]
    ok, refused = (json.loads(e["CloudTrailEvent"]) for e in events)
    assert isinstance(events[0]["EventTime"], datetime.datetime)
    assert events[0]["Username"] == "alice"
    assert events[0]["AccessKeyId"] == scenario["key"]["AccessKeyId"]
    assert events[0]["EventSource"] == "sts.amazonaws.com"
    assert events[0]["ReadOnly"] == "true"

    ident = ok["userIdentity"]
    assert ident["type"] == "IAMUser"
    assert ident["userName"] == "alice"
    assert ident["arn"] == f"arn:aws:iam::{ACCOUNT}:user/alice"
    assert ident["accountId"] == ACCOUNT
    assert ident["principalId"].startswith("AIDA")
    attrs = ident["sessionContext"]["attributes"]
    assert attrs["mfaAuthenticated"] == "true"
    assert attrs["mfaMethod"] == "totp"
    assert attrs["creationDate"].endswith("Z")
    assert ok["eventSource"] == "sts.amazonaws.com"
    assert ok["eventType"] == "AwsApiCall"
    assert ok["awsRegion"] == "us-east-1"
    assert ok["sourceIPAddress"] == "127.0.0.1"
    assert ok["userAgent"].startswith("Boto3/")
    assert ok["readOnly"] is True
    assert ok["recipientAccountId"] == ACCOUNT
    assert ok["requestParameters"] == {"serialNumber": scenario["serial"]}
    assert ok["responseElements"]["credentials"]["accessKeyId"] == scenario["session_key"]
    assert "sessionToken" not in ok["responseElements"]["credentials"]
    assert ok["eventID"] == events[0]["EventId"]
    assert len(ok["requestID"]) == 36

    assert refused["errorCode"] == "AccessDenied"
    assert refused["errorMessage"] == (
        "MultiFactorAuthentication failed with invalid MFA one time pass code.")
    assert refused["userIdentity"]["sessionContext"]["attributes"]["mfaAuthenticated"] == "false"
    assert refused["responseElements"] is None


def test_the_aws_cli_finds_alice(audit_svc, scenario):
    out = aws_cli(audit_svc, "cloudtrail", "lookup-events",
                  "--lookup-attributes", "AttributeKey=Username,AttributeValue=alice")
    assert out.returncode == 0, out.stderr
    events = json.loads(out.stdout)["Events"]
    names = [e["EventName"] for e in events]
    assert names.count("GetSessionToken") == 2, names
    records = [json.loads(e["CloudTrailEvent"]) for e in events]
    logins = [r for r in records if r["eventName"] == "GetSessionToken"]
    assert logins[0]["userIdentity"]["sessionContext"]["attributes"]["mfaAuthenticated"] == "true"
    assert logins[0]["userIdentity"]["sessionContext"]["attributes"]["mfaMethod"] == "totp"
    assert logins[1]["errorCode"] == "AccessDenied"
    # Her session's calls are hers too, marked with the session's MFA.
    session_calls = [r for r in records if r["eventName"] == "GetCallerIdentity"]
    assert len(session_calls) == 3
    assert session_calls[0]["userIdentity"]["accessKeyId"] == scenario["session_key"]
    assert session_calls[0]["userIdentity"]["sessionContext"]["attributes"]["mfaAuthenticated"] == "true"


def test_pages_follow_next_token(audit_svc, scenario):
    client = ct(audit_svc)
    first = client.lookup_events(LookupAttributes=alice_filter(), MaxResults=2)
    assert len(first["Events"]) == 2 and "NextToken" in first
    second = client.lookup_events(LookupAttributes=alice_filter(), MaxResults=2,
                                  NextToken=first["NextToken"])
    assert {e["EventId"] for e in first["Events"]}.isdisjoint(
        e["EventId"] for e in second["Events"])
    pages = list(client.get_paginator("lookup_events").paginate(
        LookupAttributes=alice_filter(), PaginationConfig={"PageSize": 2}))
    assert len(pages) >= 3
    paged = [e["EventId"] for p in pages for e in p["Events"]]
    whole = [e["EventId"] for e in client.lookup_events(LookupAttributes=alice_filter())["Events"]]
    assert paged == whole
    # The CLI paginates by itself; its page size is its own business.
    out = aws_cli(audit_svc, "cloudtrail", "lookup-events", "--page-size", "1",
                  "--lookup-attributes", "AttributeKey=Username,AttributeValue=alice")
    assert out.returncode == 0, out.stderr
    assert [e["EventId"] for e in json.loads(out.stdout)["Events"]] == whole
    # A token is good only with the parameters it came from.
    with pytest.raises(client.exceptions.InvalidNextTokenException):
        client.lookup_events(MaxResults=2, NextToken=first["NextToken"])
    with pytest.raises(client.exceptions.InvalidMaxResultsException):
        client.lookup_events(MaxResults=60)
    with pytest.raises(client.exceptions.InvalidTimeRangeException):
        client.lookup_events(StartTime=datetime.datetime(2030, 1, 1),
                             EndTime=datetime.datetime(2029, 1, 1))


def test_time_range_and_other_attributes(audit_svc, scenario):
    client = ct(audit_svc)
    now = datetime.datetime.now(datetime.timezone.utc)
    recent = client.lookup_events(StartTime=now - datetime.timedelta(minutes=10), EndTime=now
                                  + datetime.timedelta(minutes=1))["Events"]
    assert recent
    assert client.lookup_events(EndTime=now - datetime.timedelta(days=1))["Events"] == []
    by_key = client.lookup_events(LookupAttributes=[
        {"AttributeKey": "AccessKeyId", "AttributeValue": scenario["session_key"]}])["Events"]
    assert {e["EventName"] for e in by_key} == {"GetCallerIdentity"}
    writes = client.lookup_events(LookupAttributes=[
        {"AttributeKey": "ReadOnly", "AttributeValue": "false"}])["Events"]
    assert "CreateLoginProfile" in {e["EventName"] for e in writes}
    profile = next(e for e in writes if e["EventName"] == "CreateLoginProfile")
    assert profile["Resources"] == [{"ResourceType": "AWS::IAM::User",
                                     "ResourceName": f"arn:aws:iam::{ACCOUNT}:user/alice"}]
    assert json.loads(profile["CloudTrailEvent"])["requestParameters"] == {"userName": "alice"}
    by_source = client.lookup_events(LookupAttributes=[
        {"AttributeKey": "EventSource", "AttributeValue": "iam.amazonaws.com"}])["Events"]
    assert by_source and all(e["EventSource"] == "iam.amazonaws.com" for e in by_source)
    by_resource = client.lookup_events(LookupAttributes=[
        {"AttributeKey": "ResourceName",
         "AttributeValue": f"arn:aws:iam::{ACCOUNT}:user/alice"}])["Events"]
    assert "EnableMFADevice" in {e["EventName"] for e in by_resource}


def test_lookup_is_authorized_by_policy(audit_svc, scenario):
    key = scenario["key"]
    alice_ct = audit_svc.client("cloudtrail", key["AccessKeyId"], key["SecretAccessKey"])
    with pytest.raises(ClientError) as denied:
        alice_ct.lookup_events()
    err = denied.value.response["Error"]
    assert err["Code"] == "AccessDenied"
    assert "cloudtrail:LookupEvents" in err["Message"]
    audit_svc.root_client("iam").put_user_policy(
        UserName="alice", PolicyName="read-trail",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "cloudtrail:LookupEvents", "Resource": "*"}]}))
    assert alice_ct.lookup_events(MaxResults=1)["Events"]
    # The refusal itself is on the trail.
    refusals = ct(audit_svc).lookup_events(LookupAttributes=[
        {"AttributeKey": "EventName", "AttributeValue": "LookupEvents"}])["Events"]
    codes = [json.loads(e["CloudTrailEvent"]).get("errorCode") for e in refusals]
    assert "AccessDenied" in codes


def portal(svc, cookies, method, path, form=None):
    """One request to the sign-in portal as a same-origin browser form; keeps the cookies."""
    conn = http.client.HTTPConnection(svc.addr, timeout=30)
    headers = {"User-Agent": "interop-portal/1.0"}
    body = None
    if form is not None:
        body = urllib.parse.urlencode(form)
        headers.update({"Content-Type": "application/x-www-form-urlencoded",
                        "Origin": svc.url, "Sec-Fetch-Site": "same-origin"})
    if cookies:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    text = response.read().decode()
    for cookie in response.headers.get_all("Set-Cookie") or []:
        name, value = cookie.split(";")[0].split("=", 1)
        if value and "Max-Age=0" not in cookie:
            cookies[name] = value
        else:
            cookies.pop(name, None)
    conn.close()
    return response.status, text


def csrf(svc, cookies, path):
    _, page = portal(svc, cookies, "GET", path)
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def test_portal_sign_ins_are_console_login_events(audit_svc, scenario):
    cookies = {}
    wrong = portal(audit_svc, cookies, "POST", "/signin", {
        "account": ACCOUNT, "user_name": "alice", "password": "Not-the-Pa55word!",
        "csrf": csrf(audit_svc, cookies, "/signin")})
    assert wrong[0] == 401
    scenario["secrets"].append("Not-the-Pa55word!")
    status, _ = portal(audit_svc, cookies, "POST", "/signin", {
        "account": ACCOUNT, "user_name": "alice", "password": PASSWORD,
        "csrf": csrf(audit_svc, cookies, "/signin")})
    assert status == 303
    # The API login spent this step's code: the next step's is inside the window.
    code = scenario["totp"].at(scenario["now"] + 30)
    scenario["codes"].append(code)
    status, _ = portal(audit_svc, cookies, "POST", "/signin/mfa", {
        "serial": scenario["serial"], "code": code,
        "csrf": csrf(audit_svc, cookies, "/signin/mfa")})
    assert status == 303

    out = aws_cli(audit_svc, "cloudtrail", "lookup-events", "--lookup-attributes",
                  "AttributeKey=EventName,AttributeValue=ConsoleLogin")
    assert out.returncode == 0, out.stderr
    events = json.loads(out.stdout)["Events"]
    assert [e["Username"] for e in events] == ["alice", "alice"]
    assert all(e["EventSource"] == "signin.amazonaws.com" for e in events)
    success, failure = (json.loads(e["CloudTrailEvent"]) for e in events)
    assert success["eventType"] == "AwsConsoleSignIn"
    assert success["responseElements"] == {"ConsoleLogin": "Success"}
    assert success["additionalEventData"] == {
        "MobileVersion": "No", "MFAIdentifier": scenario["serial"], "MFAUsed": "Yes",
        "MfaMethod": "totp"}
    assert success["userIdentity"]["arn"] == f"arn:aws:iam::{ACCOUNT}:user/alice"
    assert success["sourceIPAddress"] == "127.0.0.1"
    assert success["userAgent"] == "interop-portal/1.0"
    assert failure["errorMessage"] == "Failed authentication"
    assert failure["responseElements"] == {"ConsoleLogin": "Failure"}
    assert failure["additionalEventData"]["FailureReason"] == "password_invalid"
    assert failure["userIdentity"]["accessKeyId"] == ""
    check = ct(audit_svc).lookup_events(LookupAttributes=[
        {"AttributeKey": "EventName", "AttributeValue": "CheckMfa"}])["Events"]
    assert len(check) == 1
    assert json.loads(check[0]["CloudTrailEvent"])["additionalEventData"] == {
        "MfaType": "Virtual MFA"}


def test_zz_no_event_holds_a_secret(audit_svc, scenario):
    pages = ct(audit_svc).get_paginator("lookup_events").paginate()
    events = [e for p in pages for e in p["Events"]]
    assert len(events) >= 15
    records = [json.loads(e["CloudTrailEvent"]) for e in events]
    text = json.dumps(records) + json.dumps(events, default=str)
    for secret in scenario["secrets"]:
        assert secret not in text
    for code in scenario["codes"]:
        assert f'"{code}"' not in text  # six digits alone do occur in ids
    for member in ("tokenCode", "authenticationCode1", "authenticationCode2", "password",
                   "secretAccessKey", "sessionToken", "base32StringSeed", "qRCodePNG"):
        assert f'"{member}"' not in text, member
