"""Security keys with an independent client: python-fido2 (Yubico's library) reaches
firmware-sim through a UDP CtapHidConnection and runs tokengate's registration and login
ceremonies with its own clientDataJSON, over FIDO2 (Fido2Client) and raw U2F (Ctap1); the
credentials work with boto3. Then `tokengate mfa register-key` and `tokengate login` as the
AWS CLI's credential_process, with a touch of the same simulator.

The simulator runs inside tests/interop.rs (firmware_sim::spawn): TOKENGATE_SIM_ADDR is its
UDP address, TOKENGATE_SIM_CA its attestation CA (PEM), which the service is told to trust."""

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

import jwt
import pyotp
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from fido2.client import DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.ctap1 import APDU, ApduError, Ctap1
from fido2.hid import CtapHidDevice
from fido2.hid.base import CtapHidConnection, HidDescriptor
from fido2.utils import sha256
from fido2.webauthn import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    CollectedClientData,
    PublicKeyCredentialCreationOptions,
    PublicKeyCredentialDescriptor,
    PublicKeyCredentialParameters,
    PublicKeyCredentialRequestOptions,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialType,
    PublicKeyCredentialUserEntity,
    UserVerificationRequirement,
)

from conftest import REGION, Service
from test_login import AwsHome, profiles
from test_totp import settled_now

ACCOUNT = "000000000000"
REPORT_SIZE = 64
INVALID_CODE = "MultiFactorAuthentication failed with invalid MFA one time pass code."


class UdpConnection(CtapHidConnection):
    """python-fido2's HID connection seam, carried over UDP: one bare 64-byte report per
    datagram (fido.md section 6.1)."""

    def __init__(self, address):
        self.address = address
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(30)

    def write_packet(self, data):
        self.sock.sendto(data, self.address)

    def read_packet(self):
        while True:
            data, _ = self.sock.recvfrom(1024)
            if len(data) == REPORT_SIZE:
                return data

    def close(self):
        self.sock.close()


@pytest.fixture(scope="module")
def sim():
    """The simulator's (host, port) and the path of its CA."""
    addr = os.environ.get("TOKENGATE_SIM_ADDR")
    ca = os.environ.get("TOKENGATE_SIM_CA")
    assert addr and ca, "run this suite through tests/interop.rs, which starts the simulator"
    host, port = addr.rsplit(":", 1)
    return (host, int(port)), ca


@pytest.fixture(scope="module")
def key_svc(sim):
    """A service (mfa.required = true) that trusts the simulator's attestation CA."""
    s = Service({"TOKENGATE_SECURITY_KEYS_TRUST_ANCHORS": sim[1]})
    yield s
    s.stop()


def device(sim):
    descriptor = HidDescriptor(
        path="udp:%s:%d" % sim[0],
        vid=0x1050,
        pid=0x0407,
        report_size_in=REPORT_SIZE,
        report_size_out=REPORT_SIZE,
        product_name="firmware-sim",
        serial_number=None,
    )
    return CtapHidDevice(descriptor, UdpConnection(sim[0]))


def b64(data):
    return base64.b64encode(bytes(data)).decode()


def call(svc, creds, service, params):
    """A SigV4-signed query-API POST (botocore signs it; boto3 has no model for tokengate's
    own actions). Returns (HTTP status, the XML root with namespaces stripped)."""
    version = "2010-05-08" if service == "iam" else "2011-06-15"
    body = urllib.parse.urlencode({**params, "Version": version})
    request = AWSRequest(
        method="POST",
        url=svc.url + "/",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    SigV4Auth(Credentials(*creds), service, REGION).add_auth(request)
    prepared = urllib.request.Request(
        svc.url + "/", data=body.encode(), headers=dict(request.headers), method="POST"
    )
    try:
        with urllib.request.urlopen(prepared, timeout=30) as reply:
            status, text = reply.status, reply.read()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()
    root = ET.fromstring(text)
    for element in root.iter():
        element.tag = element.tag.rsplit("}", 1)[-1]
    return status, root


def text(root, name):
    found = root.find(f".//{name}")
    assert found is not None, ET.tostring(root).decode()
    return found.text


def blob(root, name):
    return base64.b64decode(text(root, name))


def new_user(svc, name):
    iam = svc.root_client("iam")
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def root_creds(svc):
    return svc.root["AccessKeyId"], svc.root["SecretAccessKey"]


def registration_challenge(svc, user, name, protocol):
    status, r = call(
        svc,
        root_creds(svc),
        "iam",
        {
            "Action": "CreateSecurityKeyRegistrationChallenge",
            "UserName": user,
            "DeviceName": name,
            "Protocol": protocol,
        },
    )
    assert status == 200, ET.tostring(r).decode()
    return r


def enable(svc, challenge_id, client_data, **response):
    status, r = call(
        svc,
        root_creds(svc),
        "iam",
        {
            "Action": "EnableSecurityKey",
            "ChallengeId": challenge_id,
            "ClientDataJSON": b64(client_data),
            **{k: b64(v) for k, v in response.items()},
        },
    )
    assert status == 200, ET.tostring(r).decode()
    return text(r, "SerialNumber")


def login_challenge(svc, creds, serial):
    status, r = call(
        svc, creds, "sts", {"Action": "GetSecurityKeyChallenge", "SerialNumber": serial}
    )
    assert status == 200, ET.tostring(r).decode()
    return r


def session_token(svc, creds, serial, challenge, credential_id, auth_data, client_data, sig):
    return call(
        svc,
        creds,
        "sts",
        {
            "Action": "GetSessionTokenWithSecurityKey",
            "SerialNumber": serial,
            "ChallengeId": text(challenge, "ChallengeId"),
            "CredentialId": b64(credential_id),
            "AuthenticatorData": b64(auth_data),
            "ClientDataJSON": b64(client_data),
            "Signature": b64(sig),
            "DurationSeconds": "900",
        },
    )


def assert_identity(svc, root, user, method, serial):
    """The issued credentials work with boto3, and their token says how MFA was done."""
    creds = [text(root, n) for n in ("AccessKeyId", "SecretAccessKey", "SessionToken")]
    sts = svc.client("sts", *creds)
    assert sts.get_caller_identity()["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/{user}"
    claims = jwt.decode(creds[2], options={"verify_signature": False})
    assert claims["mfa"] == {
        "present": True,
        "method": method,
        "device": serial,
        "auth_time": claims["mfa"]["auth_time"],
    }


def register_fido2(svc, sim, user, name):
    """Registers a FIDO2 credential of the simulator for `user` through python-fido2; returns
    (the client, the created credential, the serial number)."""
    r = registration_challenge(svc, user, name, "fido2")
    rp_id, origin = text(r, "RpId"), text(r, "Origin")
    client = Fido2Client(device(sim), DefaultClientDataCollector(origin), UserInteraction())
    created = client.make_credential(
        PublicKeyCredentialCreationOptions(
            rp=PublicKeyCredentialRpEntity(id=rp_id, name="tokengate"),
            user=PublicKeyCredentialUserEntity(id=blob(r, "UserId"), name=user, display_name=user),
            challenge=blob(r, "Challenge"),
            pub_key_cred_params=[
                PublicKeyCredentialParameters(type=PublicKeyCredentialType.PUBLIC_KEY, alg=-7),
                PublicKeyCredentialParameters(type=PublicKeyCredentialType.PUBLIC_KEY, alg=-8),
            ],
            attestation=AttestationConveyancePreference.DIRECT,
            authenticator_selection=AuthenticatorSelectionCriteria(
                user_verification=UserVerificationRequirement.DISCOURAGED
            ),
        )
    )
    serial = enable(
        svc,
        text(r, "ChallengeId"),
        created.response.client_data,
        AttestationObject=bytes(created.response.attestation_object),
    )
    return client, created, serial


def fido2_assertion(svc, client, creds, serial):
    """A login challenge for `serial` and python-fido2's answer to it: (challenge, answer),
    the answer being what `session_token` takes after the challenge."""
    challenge = login_challenge(svc, creds, serial)
    assert text(challenge, "Protocol") == "fido2"
    allowed = blob(challenge, "member")
    selection = client.get_assertion(
        PublicKeyCredentialRequestOptions(
            challenge=blob(challenge, "Challenge"),
            rp_id=text(challenge, "RpId"),
            allow_credentials=[
                PublicKeyCredentialDescriptor(type=PublicKeyCredentialType.PUBLIC_KEY, id=allowed)
            ],
            user_verification=UserVerificationRequirement.DISCOURAGED,
        )
    )
    assertion = selection.get_response(0)
    return challenge, (
        assertion.raw_id,
        bytes(assertion.response.authenticator_data),
        bytes(assertion.response.client_data),
        assertion.response.signature,
    )


def test_python_fido2_registers_and_logs_in_over_ctap2(key_svc, sim):
    alice = new_user(key_svc, "py-alice")
    client, created, serial = register_fido2(key_svc, sim, "py-alice", "python-fido2")
    assert serial.startswith(f"arn:aws:iam::{ACCOUNT}:u2f/user/py-alice/python-fido2-")

    challenge, answer = fido2_assertion(key_svc, client, alice, serial)
    assert blob(challenge, "member") == created.raw_id
    status, reply = session_token(key_svc, alice, serial, challenge, *answer)
    assert status == 200, ET.tostring(reply).decode()
    assert_identity(key_svc, reply, "py-alice", "fido2", serial)

    # The same assertion again: refused, nothing issued.
    status, reply = session_token(key_svc, alice, serial, challenge, *answer)
    assert status == 403
    assert text(reply, "Message") == INVALID_CODE
    assert reply.find(".//Credentials") is None


def test_a_policy_can_demand_a_security_key(key_svc, sim):
    """tokengate:MfaMethod: `iam:*` only for sessions created with a FIDO2 touch."""
    dana = new_user(key_svc, "pol-dana")
    root = key_svc.root_client("iam")
    root.put_user_policy(
        UserName="pol-dana",
        PolicyName="iam-with-a-key",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "iam:*",
                        "Resource": "*",
                        "Condition": {"StringEquals": {"tokengate:MfaMethod": "fido2"}},
                    }
                ],
            }
        ),
    )
    # A TOTP login: an MFA session, but not by the method the policy demands.
    device = root.create_virtual_mfa_device(VirtualMFADeviceName="pol-dana")["VirtualMFADevice"]
    totp = pyotp.TOTP(device["Base32StringSeed"].decode())
    now = settled_now()
    root.enable_mfa_device(
        UserName="pol-dana",
        SerialNumber=device["SerialNumber"],
        AuthenticationCode1=totp.at(now - 120),
        AuthenticationCode2=totp.at(now - 90),
    )
    creds = key_svc.client("sts", *dana).get_session_token(
        SerialNumber=device["SerialNumber"], TokenCode=totp.at(now), DurationSeconds=900
    )["Credentials"]
    totp_iam = key_svc.client(
        "iam", creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]
    )
    with pytest.raises(ClientError) as e:
        totp_iam.list_users()
    err = e.value.response["Error"]
    assert err["Code"] == "AccessDenied", err
    assert err["Message"].endswith(
        "because no identity-based policy allows the iam:ListUsers action"
    ), err

    # A security-key login: allowed.
    client, _, serial = register_fido2(key_svc, sim, "pol-dana", "pol-key")
    challenge, answer = fido2_assertion(key_svc, client, dana, serial)
    status, reply = session_token(key_svc, dana, serial, challenge, *answer)
    assert status == 200, ET.tostring(reply).decode()
    key_creds = [text(reply, n) for n in ("AccessKeyId", "SecretAccessKey", "SessionToken")]
    names = [u["UserName"] for u in key_svc.client("iam", *key_creds).list_users()["Users"]]
    assert "pol-dana" in names


def ctap1_until_touched(operation):
    """A U2F command, re-sent while the key answers 0x6985 (touch needed)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return operation()
        except ApduError as e:
            if e.code != APDU.USE_NOT_SATISFIED or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_python_fido2_registers_and_logs_in_over_u2f(key_svc, sim):
    bob = new_user(key_svc, "py-bob")
    r = registration_challenge(key_svc, "py-bob", "u2f-key", "u2f")
    rp_id, origin = text(r, "RpId"), text(r, "Origin")
    application = sha256(rp_id.encode())
    client_data = CollectedClientData.create(
        type=CollectedClientData.TYPE.CREATE, challenge=blob(r, "Challenge"), origin=origin
    )
    ctap1 = Ctap1(device(sim))
    registration = ctap1_until_touched(lambda: ctap1.register(client_data.hash, application))
    serial = enable(
        key_svc, text(r, "ChallengeId"), client_data, RegistrationData=bytes(registration)
    )

    challenge = login_challenge(key_svc, bob, serial)
    assert text(challenge, "Protocol") == "u2f"
    key_handle = blob(challenge, "member")
    assert key_handle == registration.key_handle
    client_data = CollectedClientData.create(
        type=CollectedClientData.TYPE.GET, challenge=blob(challenge, "Challenge"), origin=origin
    )
    signed = ctap1_until_touched(
        lambda: ctap1.authenticate(client_data.hash, application, key_handle)
    )
    # WebAuthn's "FIDO U2F signature format compatibility": the first 37 signed bytes.
    auth_data = application + bytes([signed.user_presence]) + signed.counter.to_bytes(4, "big")
    status, reply = session_token(
        key_svc, bob, serial, challenge, key_handle, auth_data, client_data, signed.signature
    )
    assert status == 200, ET.tostring(reply).decode()
    assert_identity(key_svc, reply, "py-bob", "u2f", serial)


@pytest.mark.parametrize("protocol", ["fido2", "u2f"])
def test_aws_cli_logs_in_through_tokengate_login_with_a_touch(key_svc, sim, tmp_path, protocol):
    user = f"carol-{protocol}"
    carol = new_user(key_svc, user)
    address = "udp:%s:%d" % sim[0]
    out = subprocess.run(
        [
            os.environ["TOKENGATE_BIN"],
            "mfa",
            "register-key",
            "--user-name",
            user,
            "--name",
            "sim",
            "--protocol",
            protocol,
            "--device",
            address,
            "--root-credentials",
            os.path.join(key_svc.data, "root-credentials.json"),
            "--endpoint-url",
            key_svc.url,
        ],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    serial = next(
        line.split("=", 1)[1].strip()
        for line in out.stdout.splitlines()
        if line.strip().startswith("mfa_serial =")
    )
    home = AwsHome(tmp_path)
    home.write(
        profiles(key_svc, "mfa", "base", f" --device {address}") + f"mfa_serial = {serial}\n",
        f"[base]\naws_access_key_id = {carol[0]}\naws_secret_access_key = {carol[1]}\n",
    )
    out = home.aws("sts", "get-caller-identity", "--profile", "mfa")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/{user}"
    (cached,) = home.cache_files()
    with open(cached) as f:
        doc = json.load(f)
    claims = jwt.decode(doc["SessionToken"], options={"verify_signature": False})
    assert claims["mfa"]["method"] == protocol and claims["mfa"]["device"] == serial

    # boto3 with the same profile runs the same credential_process (served from the cache).
    env = {
        "AWS_CONFIG_FILE": home.config,
        "AWS_SHARED_CREDENTIALS_FILE": home.credentials,
        "XDG_CACHE_HOME": os.path.join(home.root, "cache"),
        "HOME": home.root,
    }
    script = (
        "import boto3; "
        "print(boto3.Session(profile_name='mfa').client('sts')"
        ".get_caller_identity()['Arn'])"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"arn:aws:iam::{ACCOUNT}:user/{user}"


def assume_role_with_key(svc, creds, role, serial, challenge, credential_id, auth_data,
                         client_data, sig, **extra):
    """tokengate's AssumeRoleWithSecurityKey: AssumeRole's parameters plus the assertion."""
    return call(
        svc,
        creds,
        "sts",
        {
            "Action": "AssumeRoleWithSecurityKey",
            "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/{role}",
            "RoleSessionName": "touched",
            "SerialNumber": serial,
            "ChallengeId": text(challenge, "ChallengeId"),
            "CredentialId": b64(credential_id),
            "AuthenticatorData": b64(auth_data),
            "ClientDataJSON": b64(client_data),
            "Signature": b64(sig),
            **extra,
        },
    )


def register_u2f(svc, sim, user, name):
    """Registers a U2F credential of the simulator for `user` over CTAP1; returns
    (ctap1, key handle, serial, rp id, origin)."""
    r = registration_challenge(svc, user, name, "u2f")
    rp_id, origin = text(r, "RpId"), text(r, "Origin")
    client_data = CollectedClientData.create(
        type=CollectedClientData.TYPE.CREATE, challenge=blob(r, "Challenge"), origin=origin
    )
    ctap1 = Ctap1(device(sim))
    application = sha256(rp_id.encode())
    registration = ctap1_until_touched(lambda: ctap1.register(client_data.hash, application))
    serial = enable(svc, text(r, "ChallengeId"), client_data,
                    RegistrationData=bytes(registration))
    return ctap1, registration.key_handle, serial, application, origin


def u2f_assertion(svc, ctap1, creds, serial, key_handle, application, origin):
    challenge = login_challenge(svc, creds, serial)
    client_data = CollectedClientData.create(
        type=CollectedClientData.TYPE.GET, challenge=blob(challenge, "Challenge"), origin=origin
    )
    signed = ctap1_until_touched(
        lambda: ctap1.authenticate(client_data.hash, application, key_handle)
    )
    auth_data = application + bytes([signed.user_presence]) + signed.counter.to_bytes(4, "big")
    return challenge, (key_handle, auth_data, client_data, signed.signature)


def test_assume_role_by_touch_and_a_trust_policy_that_demands_it(key_svc, sim):
    """AssumeRoleWithSecurityKey (fido2 and u2f) against a trust policy requiring
    tokengate:MfaMethod: a TOTP-backed AssumeRole is refused, a touch is accepted."""
    root = key_svc.root_client("iam")
    user = "touch-tess"
    tess = new_user(key_svc, user)
    for role, methods in (("needs-fido2", ["fido2"]), ("needs-a-key", ["fido2", "u2f"])):
        root.create_role(
            RoleName=role,
            AssumeRolePolicyDocument=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/{user}"},
                    "Action": "sts:AssumeRole",
                    "Condition": {
                        "Bool": {"aws:MultiFactorAuthPresent": "true"},
                        "StringEquals": {"tokengate:MfaMethod": methods},
                    },
                }],
            }),
        )
        root.attach_role_policy(RoleName=role,
                                PolicyArn="arn:aws:iam::aws:policy/IAMReadOnlyAccess")

    # A TOTP code satisfies MultiFactorAuthPresent but not the method: refused.
    device_ = root.create_virtual_mfa_device(VirtualMFADeviceName=user)["VirtualMFADevice"]
    totp = pyotp.TOTP(device_["Base32StringSeed"].decode())
    now = settled_now()
    root.enable_mfa_device(UserName=user, SerialNumber=device_["SerialNumber"],
                           AuthenticationCode1=totp.at(now - 120),
                           AuthenticationCode2=totp.at(now - 90))
    with pytest.raises(ClientError) as e:
        key_svc.client("sts", *tess).assume_role(
            RoleArn=f"arn:aws:iam::{ACCOUNT}:role/needs-fido2", RoleSessionName="code",
            SerialNumber=device_["SerialNumber"], TokenCode=totp.at(now))
    err = e.value.response["Error"]
    assert err["Code"] == "AccessDenied"
    assert "is not authorized to perform: sts:AssumeRole on resource: " \
        f"arn:aws:iam::{ACCOUNT}:role/needs-fido2" in err["Message"], err

    # A FIDO2 touch: accepted; the session says how MFA was done and works.
    client, _, serial = register_fido2(key_svc, sim, user, "tess-fido2")
    challenge, answer = fido2_assertion(key_svc, client, tess, serial)
    status, reply = assume_role_with_key(key_svc, tess, "needs-fido2", serial, challenge,
                                         *answer, DurationSeconds="900")
    assert status == 200, ET.tostring(reply).decode()
    assert reply.tag == "AssumeRoleWithSecurityKeyResponse"
    assert text(reply, "Arn") == f"arn:aws:sts::{ACCOUNT}:assumed-role/needs-fido2/touched"
    creds = [text(reply, n) for n in ("AccessKeyId", "SecretAccessKey", "SessionToken")]
    claims = jwt.decode(creds[2], options={"verify_signature": False})
    assert claims["mfa"]["method"] == "fido2" and claims["mfa"]["device"] == serial
    assert key_svc.client("sts", *creds).get_caller_identity()["Arn"].endswith(
        ":assumed-role/needs-fido2/touched")
    assert key_svc.client("iam", *creds).list_roles()["Roles"]
    # The same assertion again: AWS's MFA text, nothing issued.
    status, reply = assume_role_with_key(key_svc, tess, "needs-fido2", serial, challenge,
                                         *answer)
    assert status == 403 and text(reply, "Message") == INVALID_CODE
    assert reply.find(".//Credentials") is None

    # A U2F touch: refused by the fido2-only role, accepted by the one that takes either.
    ctap1, handle, u2f_serial, application, origin = register_u2f(key_svc, sim, user,
                                                                   "tess-u2f")
    challenge, answer = u2f_assertion(key_svc, ctap1, tess, u2f_serial, handle, application,
                                      origin)
    status, reply = assume_role_with_key(key_svc, tess, "needs-fido2", u2f_serial, challenge,
                                         *answer)
    assert status == 403 and text(reply, "Code") == "AccessDenied"
    challenge, answer = u2f_assertion(key_svc, ctap1, tess, u2f_serial, handle, application,
                                      origin)
    status, reply = assume_role_with_key(key_svc, tess, "needs-a-key", u2f_serial, challenge,
                                         *answer)
    assert status == 200, ET.tostring(reply).decode()
    claims = jwt.decode(text(reply, "SessionToken"), options={"verify_signature": False})
    assert claims["mfa"]["method"] == "u2f"

    # A TokenCode has no place beside a touch.
    challenge, answer = fido2_assertion(key_svc, client, tess, serial)
    status, reply = assume_role_with_key(key_svc, tess, "needs-fido2", serial, challenge,
                                         *answer, TokenCode="123456")
    assert status == 400 and text(reply, "Code") == "ValidationError"


@pytest.mark.parametrize("where", ["role-profile", "source-profile"])
def test_tokengate_login_assumes_a_role_by_touch(key_svc, sim, tmp_path, where):
    """A `role_arn` profile whose factor is a security key, through the AWS CLI's
    credential_process: with the key's serial on the role profile tokengate calls
    AssumeRoleWithSecurityKey; on the source profile, aws-vault's pattern (a touch for
    GetSessionTokenWithSecurityKey, then AssumeRole carrying it). Either way the role's trust
    policy sees tokengate:MfaMethod = fido2."""
    user = f"role-toucher-{where}"
    keys = new_user(key_svc, user)
    root = key_svc.root_client("iam")
    role = f"touch-admin-{where}"
    root.create_role(
        RoleName=role,
        AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/{user}"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"tokengate:MfaMethod": "fido2"}},
            }],
        }),
    )
    _, _, serial = register_fido2(key_svc, sim, user, "cli-key")
    address = "udp:%s:%d" % sim[0]
    on_role = f"mfa_serial = {serial}\n" if where == "role-profile" else ""
    on_base = f"mfa_serial = {serial}\n" if where == "source-profile" else ""
    home = AwsHome(tmp_path)
    home.write(
        f"[profile via]\n"
        f"credential_process = {os.environ['TOKENGATE_BIN']} login --profile admin "
        f"--device {address}\n"
        f"endpoint_url = {key_svc.url}\nregion = us-east-1\n\n"
        f"[profile admin]\nrole_arn = arn:aws:iam::{ACCOUNT}:role/{role}\n"
        f"source_profile = base\nrole_session_name = touched\n{on_role}"
        f"endpoint_url = {key_svc.url}\nregion = us-east-1\n\n"
        f"[profile base]\n{on_base}endpoint_url = {key_svc.url}\nregion = us-east-1\n",
        f"[base]\naws_access_key_id = {keys[0]}\naws_secret_access_key = {keys[1]}\n",
    )
    out = home.aws("sts", "get-caller-identity", "--profile", "via")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/touched"
    cached = [f for f in home.cache_files()]
    tokens = []
    for path in cached:
        with open(path) as f:
            tokens.append(jwt.decode(json.load(f)["SessionToken"],
                                     options={"verify_signature": False}))
    role_claims = [c for c in tokens if c["principal"]["type"] == "assumed_role"]
    assert role_claims and role_claims[0]["mfa"]["method"] == "fido2"
    assert role_claims[0]["mfa"]["device"] == serial
    # The aws-vault pattern caches the MFA session of the source profile too.
    assert len(tokens) == (2 if where == "source-profile" else 1), tokens
