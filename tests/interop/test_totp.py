"""Virtual TOTP MFA against an independent RFC 6238 implementation (pyotp), with boto3."""

import base64
import time

import pyotp
import pytest
from botocore.exceptions import ClientError

from conftest import Service

ACCOUNT = "000000000000"
INVALID_CODE = "MultiFactorAuthentication failed with invalid MFA one time pass code."
INVALID_SERIAL = (
    "MultiFactorAuthentication failed, unable to validate MFA code.  Please verify your MFA "
    "serial number is valid and associated with this user."
)
LOCKOUT_SECS = 2


@pytest.fixture(scope="module")
def mfa_svc():
    """mfa.required = true (the default), with a short lockout so the test can wait it out."""
    s = Service({"TOKENGATE_MFA_LOCKOUT_SECS": str(LOCKOUT_SECS)})
    yield s
    s.stop()


def settled_now():
    """Now, at least 3 s from a 30 s step boundary, so that a test's idea of the current step
    and the server's agree."""
    while True:
        now = time.time()
        if 3 <= now % 30 <= 26:
            return now
        time.sleep(0.5)


def new_user(svc, name):
    iam = svc.root_client("iam")
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return svc.client("sts", key["AccessKeyId"], key["SecretAccessKey"])


def new_device(svc, name, user, enable_steps_ago=(4, 3)):
    """A virtual device for `user`, enabled with the codes of steps now-4 and now-3 (so the
    current step and its neighbours are still unused)."""
    iam = svc.root_client("iam")
    dev = iam.create_virtual_mfa_device(VirtualMFADeviceName=name)["VirtualMFADevice"]
    seed = dev["Base32StringSeed"].decode()
    totp = pyotp.TOTP(seed)
    now = settled_now()
    a, b = enable_steps_ago
    iam.enable_mfa_device(
        UserName=user,
        SerialNumber=dev["SerialNumber"],
        AuthenticationCode1=totp.at(now - 30 * a),
        AuthenticationCode2=totp.at(now - 30 * b),
    )
    return dev["SerialNumber"], totp


def denied(excinfo):
    err = excinfo.value.response["Error"]
    assert err["Code"] == "AccessDenied", err
    return err["Message"]


def test_create_returns_seed_and_qr_png(mfa_svc):
    dev = mfa_svc.root_client("iam").create_virtual_mfa_device(VirtualMFADeviceName="phone")
    dev = dev["VirtualMFADevice"]
    assert dev["SerialNumber"] == f"arn:aws:iam::{ACCOUNT}:mfa/phone"
    seed = dev["Base32StringSeed"].decode()
    assert len(base64.b32decode(seed + "=" * (-len(seed) % 8))) == 20  # 160-bit seed
    assert dev["QRCodePNG"].startswith(b"\x89PNG\r\n\x1a\n")
    listed = mfa_svc.root_client("iam").list_virtual_mfa_devices(AssignmentStatus="Unassigned")
    assert [d["SerialNumber"] for d in listed["VirtualMFADevices"]] == [dev["SerialNumber"]]
    assert "Base32StringSeed" not in listed["VirtualMFADevices"][0]


def test_enable_needs_two_consecutive_codes(mfa_svc):
    new_user(mfa_svc, "erin")
    iam = mfa_svc.root_client("iam")
    dev = iam.create_virtual_mfa_device(VirtualMFADeviceName="erin")["VirtualMFADevice"]
    totp = pyotp.TOTP(dev["Base32StringSeed"].decode())
    now = settled_now()
    for c1, c2 in [(now, now + 60), (now + 30, now), (now, now)]:
        with pytest.raises(ClientError) as e:
            iam.enable_mfa_device(UserName="erin", SerialNumber=dev["SerialNumber"],
                                  AuthenticationCode1=totp.at(c1), AuthenticationCode2=totp.at(c2))
        assert e.value.response["Error"]["Code"] == "InvalidAuthenticationCode"
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    iam.enable_mfa_device(UserName="erin", SerialNumber=dev["SerialNumber"],
                          AuthenticationCode1=totp.at(now), AuthenticationCode2=totp.at(now + 30))
    devices = iam.list_mfa_devices(UserName="erin")["MFADevices"]
    assert [d["SerialNumber"] for d in devices] == [dev["SerialNumber"]]
    with pytest.raises(ClientError) as e:
        iam.enable_mfa_device(UserName="erin", SerialNumber=dev["SerialNumber"],
                              AuthenticationCode1=totp.at(now), AuthenticationCode2=totp.at(now + 30))
    assert e.value.response["Error"]["Code"] == "EntityAlreadyExists"


def test_login_with_a_code_once_and_never_again(mfa_svc):
    sts = new_user(mfa_svc, "alice")
    serial, totp = new_device(mfa_svc, "alice", "alice")
    with pytest.raises(ClientError) as e:
        sts.get_session_token()
    assert "MultiFactorAuthentication is required" in denied(e)
    code = totp.at(settled_now())
    creds = sts.get_session_token(SerialNumber=serial, TokenCode=code)["Credentials"]
    temp = mfa_svc.client("sts", creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    assert temp.get_caller_identity()["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/alice"
    with pytest.raises(ClientError) as e:
        sts.get_session_token(SerialNumber=serial, TokenCode=code)
    assert denied(e) == INVALID_CODE


def test_other_devices_codes_and_serials_are_refused(mfa_svc):
    sts = new_user(mfa_svc, "bob")
    serial, totp = new_device(mfa_svc, "bob", "bob")
    new_user(mfa_svc, "carol")
    carol_serial, carol_totp = new_device(mfa_svc, "carol", "carol")
    now = settled_now()
    with pytest.raises(ClientError) as e:
        sts.get_session_token(SerialNumber=serial, TokenCode=carol_totp.at(now))
    assert denied(e) == INVALID_CODE
    with pytest.raises(ClientError) as e:  # carol's device, carol's code, bob's keys
        sts.get_session_token(SerialNumber=carol_serial, TokenCode=carol_totp.at(now))
    assert denied(e) == INVALID_SERIAL
    with pytest.raises(ClientError) as e:
        sts.get_session_token(SerialNumber=f"arn:aws:iam::{ACCOUNT}:mfa/nothing", TokenCode="123456")
    assert denied(e) == INVALID_SERIAL
    assert sts.get_session_token(SerialNumber=serial, TokenCode=totp.at(now))["Credentials"]


def test_window_is_one_step_either_side(mfa_svc):
    sts = new_user(mfa_svc, "dave")
    serial, totp = new_device(mfa_svc, "dave", "dave", enable_steps_ago=(6, 5))
    now = settled_now()
    for offset in (-60, 60):  # two steps late, two steps early
        with pytest.raises(ClientError) as e:
            sts.get_session_token(SerialNumber=serial, TokenCode=totp.at(now + offset))
        assert denied(e) == INVALID_CODE
    # One step late, then one step early (in that order: a step at or below the last accepted
    # one is a replay).
    assert sts.get_session_token(SerialNumber=serial, TokenCode=totp.at(now - 30))
    assert sts.get_session_token(SerialNumber=serial, TokenCode=totp.at(now + 30))


def test_lockout_after_five_failures_then_recovery(mfa_svc):
    sts = new_user(mfa_svc, "frank")
    serial, totp = new_device(mfa_svc, "frank", "frank")
    now = settled_now()
    good = totp.at(now)
    bad = f"{(int(good) + 1) % 1000000:06d}"
    for _ in range(5):
        with pytest.raises(ClientError) as e:
            sts.get_session_token(SerialNumber=serial, TokenCode=bad)
        assert denied(e) == INVALID_CODE
    with pytest.raises(ClientError) as e:  # the right code, refused while locked out
        sts.get_session_token(SerialNumber=serial, TokenCode=good)
    assert denied(e) == INVALID_CODE
    time.sleep(LOCKOUT_SECS + 0.5)
    code = totp.at(settled_now())
    assert sts.get_session_token(SerialNumber=serial, TokenCode=code)["Credentials"]


def test_resync_after_drift(mfa_svc):
    sts = new_user(mfa_svc, "gina")
    serial, totp = new_device(mfa_svc, "gina", "gina")
    iam = mfa_svc.root_client("iam")
    drift = 600  # the device runs ten minutes fast
    now = settled_now()
    with pytest.raises(ClientError) as e:
        sts.get_session_token(SerialNumber=serial, TokenCode=totp.at(now + drift))
    assert denied(e) == INVALID_CODE
    with pytest.raises(ClientError) as e:  # not consecutive
        iam.resync_mfa_device(UserName="gina", SerialNumber=serial,
                              AuthenticationCode1=totp.at(now + drift),
                              AuthenticationCode2=totp.at(now + drift + 60))
    assert e.value.response["Error"]["Code"] == "InvalidAuthenticationCode"
    iam.resync_mfa_device(UserName="gina", SerialNumber=serial,
                          AuthenticationCode1=totp.at(now + drift),
                          AuthenticationCode2=totp.at(now + drift + 30))
    code = totp.at(now + drift + 60)
    assert sts.get_session_token(SerialNumber=serial, TokenCode=code)["Credentials"]


def test_deactivate_and_delete(mfa_svc):
    sts = new_user(mfa_svc, "hank")
    serial, totp = new_device(mfa_svc, "hank", "hank")
    iam = mfa_svc.root_client("iam")
    with pytest.raises(ClientError) as e:
        iam.delete_virtual_mfa_device(SerialNumber=serial)
    assert e.value.response["Error"]["Code"] == "DeleteConflict"
    iam.deactivate_mfa_device(UserName="hank", SerialNumber=serial)
    with pytest.raises(ClientError) as e:
        sts.get_session_token(SerialNumber=serial, TokenCode=totp.at(settled_now()))
    assert denied(e) == INVALID_SERIAL
    iam.delete_virtual_mfa_device(SerialNumber=serial)
    with pytest.raises(ClientError) as e:
        iam.delete_virtual_mfa_device(SerialNumber=serial)
    assert e.value.response["Error"]["Code"] == "NoSuchEntity"


def test_eight_devices_per_user(mfa_svc):
    new_user(mfa_svc, "ivy")
    for i in range(8):
        new_device(mfa_svc, f"ivy-{i}", "ivy")
    iam = mfa_svc.root_client("iam")
    dev = iam.create_virtual_mfa_device(VirtualMFADeviceName="ivy-8")["VirtualMFADevice"]
    totp = pyotp.TOTP(dev["Base32StringSeed"].decode())
    now = settled_now()
    with pytest.raises(ClientError) as e:
        iam.enable_mfa_device(UserName="ivy", SerialNumber=dev["SerialNumber"],
                              AuthenticationCode1=totp.at(now), AuthenticationCode2=totp.at(now + 30))
    assert e.value.response["Error"] == {
        "Type": "Sender",
        "Code": "LimitExceeded",
        "Message": "Cannot exceed quota for MFADevicesPerUser: 8",
    }


def test_session_carries_the_mfa_context(mfa_svc):
    import jwt

    sts = new_user(mfa_svc, "jack")
    serial, totp = new_device(mfa_svc, "jack", "jack")
    creds = sts.get_session_token(SerialNumber=serial, TokenCode=totp.at(settled_now()))
    claims = jwt.decode(creds["Credentials"]["SessionToken"], options={"verify_signature": False})
    assert claims["mfa"]["present"] is True
    assert claims["mfa"]["method"] == "totp"
    assert claims["mfa"]["device"] == serial
    assert abs(claims["mfa"]["auth_time"] - time.time()) < 60
