"""Security keys in the sign-in portal (issue 13, docs/portal.md), in a real browser:
Debian's headless Chromium through chromedriver (offline), with the CDP WebAuthn virtual
authenticator, protocol ctap2 and u2f.

For each protocol a user signs in with password + TOTP, registers a security key in the
browser (navigator.credentials.create, authorized and verified by the API's
CreateSecurityKeyRegistrationChallenge/EnableSecurityKey), signs out, and signs in with
password + the key (navigator.credentials.get, verified by the API's assertion check); the
shown credentials work with boto3 and their session token carries MFA method fido2. A bad
signature is refused and counted; another user's key is refused; the key registered in the
portal also works for GetSessionTokenWithSecurityKey (the assertion signed by the same
virtual authenticator).

The service trusts `none` attestation here (security_keys.allow_none_attestation and
browser_attestation = none): Chromium's virtual authenticator re-signs its self-signed batch
certificate on every registration, so no pinned certificate could trust it.
"""

import base64
import datetime
import hashlib
import json
import os
import tempfile
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
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from conftest import Service
from test_portal import ACCOUNT, PASSWORD, browser, click, exported, shoot, shots, text  # noqa: F401

NS = {"s": "https://sts.amazonaws.com/doc/2011-06-15/"}


@pytest.fixture(scope="module")
def keys_portal():
    s = Service({
        "TOKENGATE_SECURITY_KEYS_ALLOW_NONE_ATTESTATION": "true",
        "TOKENGATE_SECURITY_KEYS_BROWSER_ATTESTATION": "none",
    })
    port = s.addr.rsplit(":", 1)[1]
    s.base = f"http://tokengate.localhost:{port}"
    yield s
    s.stop()


@pytest.fixture
def authenticator(browser):  # noqa: F811
    """Adds a virtual authenticator of the requested protocol; removes it afterwards."""
    made = []

    def add(protocol):
        browser.execute_cdp_cmd("WebAuthn.enable", {"enableUI": False})
        aid = browser.execute_cdp_cmd("WebAuthn.addVirtualAuthenticator", {"options": {
            "protocol": protocol, "ctap2Version": "ctap2_1", "transport": "usb",
            "hasResidentKey": False, "hasUserVerification": False, "isUserVerified": False,
            "automaticPresenceSimulation": True,
        }})["authenticatorId"]
        made.append(aid)
        return aid

    yield add
    for aid in made:
        browser.execute_cdp_cmd("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": aid})


def make_user(svc, name):
    """A user with a password, a TOTP device, an access key and the right to register its own
    MFA devices (AWS's "manage your own MFA" statement). Returns (totp, access key)."""
    iam = svc.root_client("iam")
    iam.create_user(UserName=name)
    iam.create_login_profile(UserName=name, Password=PASSWORD)
    iam.put_user_policy(UserName=name, PolicyName="own-mfa", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": ["iam:EnableMFADevice", "iam:ListMFADevices"],
            "Resource": "arn:aws:iam::*:user/${aws:username}",
        }],
    }))
    device = iam.create_virtual_mfa_device(VirtualMFADeviceName=f"{name}-phone")["VirtualMFADevice"]
    totp = pyotp.TOTP(device["Base32StringSeed"].decode())
    now = time.time()
    iam.enable_mfa_device(UserName=name, SerialNumber=device["SerialNumber"],
                          AuthenticationCode1=totp.at(now - 30), AuthenticationCode2=totp.at(now))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return totp, (key["AccessKeyId"], key["SecretAccessKey"])


def wait_url(driver, url):
    WebDriverWait(driver, 20).until(lambda d: d.current_url == url)


def password_step(driver, base, name):
    # A fresh start: no session left from an earlier (possibly failed) test.
    driver.get(f"{base}/signin")
    driver.delete_all_cookies()
    driver.get(f"{base}/signin")
    driver.find_element(By.ID, "user_name").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    click(driver, "signin")
    assert driver.current_url == f"{base}/signin/mfa", driver.page_source


def sign_in_with_code(driver, base, name, totp):
    password_step(driver, base, name)
    driver.find_element(By.ID, "code").send_keys(totp.at(time.time() + 30))
    click(driver, "verify")
    assert driver.current_url == f"{base}/portal", driver.page_source


def sign_out(driver, base):
    driver.get(f"{base}/portal")
    click(driver, "signout")
    assert driver.current_url == f"{base}/signin"


def sts_call(svc, creds, params, service="sts", version="2011-06-15"):
    """A SigV4-signed query call (tokengate's security-key actions are not in botocore);
    (status, parsed XML)."""
    body = "&".join(f"{k}={urllib.parse.quote(v, safe='')}" for k, v in
                    {"Version": version, **params}.items())
    request = AWSRequest(method="POST", url=svc.url + "/", data=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    SigV4Auth(Credentials(*creds), service, "us-east-1").add_auth(request)
    prepared = request.prepare()
    req = urllib.request.Request(prepared.url, data=body.encode(), method="POST",
                                 headers=dict(prepared.headers.items()))
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, ET.fromstring(r.read())
    except urllib.error.HTTPError as e:
        return e.code, ET.fromstring(e.read())


GET_ASSERTION = """
const [rpId, challenge, credential, done] = arguments;
const bin = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
const b64 = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)));
navigator.credentials.get({publicKey: {rpId, challenge: bin(challenge),
    allowCredentials: [{type: "public-key", id: bin(credential)}],
    userVerification: "discouraged"}})
  .then((c) => done({credential_id: b64(c.rawId),
                     authenticator_data: b64(c.response.authenticatorData),
                     client_data_json: b64(c.response.clientDataJSON),
                     signature: b64(c.response.signature)}),
        (e) => done({error: e.name + ": " + e.message}));
"""


@pytest.mark.parametrize("protocol", ["ctap2", "u2f"])
def test_register_a_key_in_the_browser_then_sign_in_with_it(
        keys_portal, browser, shots, authenticator, protocol):  # noqa: F811
    svc, base = keys_portal, keys_portal.base
    name = f"kate-{protocol}"
    totp, access_key = make_user(svc, name)
    aid = authenticator(protocol)

    # The log names the portal's URL: the relying party's origin, port included.
    assert any(f'"portal":"{base}/signin"' in line for line in svc.log), svc.log[:4]

    # Register a key: password + code, then the key page.
    sign_in_with_code(browser, base, name, totp)
    click(browser, "register-key")  # the portal page links to it
    browser.find_element(By.ID, "device_name").send_keys(f"{protocol}-key")
    if protocol == "ctap2":
        shoot(browser, shots, "key-register")
    click(browser, "begin")
    WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.ID, "registered"))
    serial = text(browser, "registered-serial").strip()
    assert serial.startswith(f"arn:aws:iam::{ACCOUNT}:u2f/user/{name}/{protocol}-key-"), serial
    if protocol == "ctap2":
        shoot(browser, shots, "key-registered")
    iam = svc.root_client("iam")
    listed = [d["SerialNumber"] for d in iam.list_mfa_devices(UserName=name)["MFADevices"]]
    assert serial in listed
    [credential] = browser.execute_cdp_cmd(
        "WebAuthn.getCredentials", {"authenticatorId": aid})["credentials"]
    sign_out(browser, base)

    # Sign in with the key. First a bad signature (the authenticator told to forge one):
    # refused, and the page waits for the user instead of retrying by itself.
    password_step(browser, base, name)
    if protocol == "ctap2":
        shoot(browser, shots, "mfa-choice")
    if protocol == "ctap2":
        # (Chromium's U2F virtual device ignores the override bits.)
        browser.execute_cdp_cmd("WebAuthn.setResponseOverrideBits",
                                {"authenticatorId": aid, "isBogusSignature": True})
        browser.find_element(By.ID, "use-key-instead").click()
        WebDriverWait(browser, 20).until(lambda d: "was not accepted" in d.page_source)
        assert browser.current_url == f"{base}/signin/key"
        assert browser.find_element(By.ID, "use-key").get_attribute("disabled") is None
        shoot(browser, shots, "key-signin-refused")
        browser.execute_cdp_cmd("WebAuthn.setResponseOverrideBits",
                                {"authenticatorId": aid, "isBogusSignature": False})
        browser.find_element(By.ID, "use-key").send_keys("\n")  # by keyboard
    else:
        browser.find_element(By.ID, "use-key-instead").click()
    wait_url(browser, f"{base}/portal")

    creds = exported(text(browser, "session-bash"))
    sts = svc.client("sts", creds["AWS_ACCESS_KEY_ID"], creds["AWS_SECRET_ACCESS_KEY"],
                     creds["AWS_SESSION_TOKEN"])
    assert sts.get_caller_identity()["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/{name}"
    claims = jwt.decode(creds["AWS_SESSION_TOKEN"], options={"verify_signature": False})
    assert claims["mfa"]["present"] is True
    # `none` attestation proves no protocol: a browser-registered key is a FIDO2 credential.
    assert claims["mfa"]["method"] == "fido2"
    assert claims["mfa"]["device"] == serial
    sign_out(browser, base)

    # The audit trail: the key sign-in is a ConsoleLogin with its factor and device; the
    # forged signature (ctap2) a failed one with its reason.
    cloudtrail = svc.root_client("cloudtrail")
    found = cloudtrail.lookup_events(LookupAttributes=[
        {"AttributeKey": "Username", "AttributeValue": name}])["Events"]
    logins = [json.loads(e["CloudTrailEvent"]) for e in found if e["EventName"] == "ConsoleLogin"]
    assert any(e["responseElements"] == {"ConsoleLogin": "Success"}
               and e["additionalEventData"].get("MfaMethod") == "fido2"
               and e["additionalEventData"].get("MFAIdentifier") == serial
               for e in logins), logins
    if protocol == "ctap2":
        assert any(e["responseElements"] == {"ConsoleLogin": "Failure"}
                   and e["additionalEventData"].get("FailureReason")
                   == "webauthn_signature_invalid" for e in logins), logins

    # The same key through the API: GetSecurityKeyChallenge → the virtual authenticator
    # signs in the browser (the portal's origin) → GetSessionTokenWithSecurityKey.
    browser.get(f"{base}/signin")
    status, challenge = sts_call(svc, access_key, {"Action": "GetSecurityKeyChallenge",
                                                   "SerialNumber": serial})
    assert status == 200, ET.tostring(challenge)
    field = lambda tree, tag: tree.find(f".//s:{tag}", NS).text  # noqa: E731
    assert field(challenge, "Origin") == base
    signed = browser.execute_async_script(
        GET_ASSERTION, field(challenge, "RpId"), field(challenge, "Challenge"),
        credential["credentialId"])
    assert "error" not in signed, signed
    status, issued = sts_call(svc, access_key, {
        "Action": "GetSessionTokenWithSecurityKey", "SerialNumber": serial,
        "ChallengeId": field(challenge, "ChallengeId"),
        "CredentialId": signed["credential_id"],
        "AuthenticatorData": signed["authenticator_data"],
        "ClientDataJSON": signed["client_data_json"],
        "Signature": signed["signature"],
    })
    assert status == 200, ET.tostring(issued)
    token = field(issued, "SessionToken")
    api_sts = svc.client("sts", field(issued, "AccessKeyId"), field(issued, "SecretAccessKey"),
                         token)
    assert api_sts.get_caller_identity()["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/{name}"
    assert jwt.decode(token, options={"verify_signature": False})["mfa"]["method"] == "fido2"


POST_FOREIGN_ASSERTION = """
const [rpId, credential, done] = arguments;
const bin = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
const b64 = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)));
const challenge = crypto.getRandomValues(new Uint8Array(32));
navigator.credentials.get({publicKey: {rpId, challenge,
    allowCredentials: [{type: "public-key", id: bin(credential)}],
    userVerification: "discouraged"}})
  .then((c) => {
    const form = new URLSearchParams({
      csrf: document.querySelector("input[name=csrf]").value,
      challenges: "",
      credential_id: b64(c.rawId),
      authenticator_data: b64(c.response.authenticatorData),
      client_data_json: b64(c.response.clientDataJSON),
      signature: b64(c.response.signature)});
    return fetch("/signin/key", {method: "POST", body: form, redirect: "manual"});
  })
  .then((r) => r.text().then((t) => done({status: r.status, text: t})),
        (e) => done({error: e.name + ": " + e.message}));
"""


def test_a_key_of_another_user_is_refused(keys_portal, browser, authenticator):  # noqa: F811
    svc, base = keys_portal, keys_portal.base
    owner_totp, _ = make_user(svc, "olga")
    _, _ = make_user(svc, "lee")
    aid = authenticator("ctap2")
    # olga registers a key in the browser.
    sign_in_with_code(browser, base, "olga", owner_totp)
    browser.get(f"{base}/portal/keys")
    browser.find_element(By.ID, "device_name").send_keys("olga-key")
    click(browser, "begin")
    WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.ID, "registered"))
    [credential] = browser.execute_cdp_cmd(
        "WebAuthn.getCredentials", {"authenticatorId": aid})["credentials"]
    sign_out(browser, base)

    # lee, past his password, presents olga's key (a real assertion by it): refused.
    password_step(browser, base, "lee")
    browser.get(f"{base}/signin/key")  # lee has no key: the page offers none
    assert not browser.find_elements(By.ID, "use-key")
    answer = browser.execute_async_script(
        POST_FOREIGN_ASSERTION, "tokengate.localhost", credential["credentialId"])
    assert answer.get("status") == 401, answer
    assert "was not accepted" in answer["text"]
    browser.get(f"{base}/portal")
    assert browser.current_url == f"{base}/signin"  # not signed in
    assert any("not one of this user" in line and "lee" in line for line in svc.log)


def test_the_key_page_says_what_to_do_when_it_cannot_work(
        keys_portal, browser, shots, authenticator):  # noqa: F811
    """Opened at http://localhost:PORT, whose origin is not the relying party's, the key
    page says which URL to open instead of failing obscurely; in a browser without WebAuthn
    it says so and offers the code instead."""
    svc = keys_portal
    totp, _ = make_user(svc, "wrong-host")
    authenticator("ctap2")
    # Register at the right origin first.
    sign_in_with_code(browser, svc.base, "wrong-host", totp)
    browser.get(f"{svc.base}/portal/keys")
    browser.find_element(By.ID, "device_name").send_keys("k")
    click(browser, "begin")
    WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.ID, "registered"))
    sign_out(browser, svc.base)
    port = svc.addr.rsplit(":", 1)[1]
    other = f"http://localhost:{port}"
    password_step(browser, other, "wrong-host")
    browser.find_element(By.ID, "use-key-instead").click()
    WebDriverWait(browser, 20).until(
        lambda d: "work only at" in d.find_element(By.ID, "webauthn-status").text)
    assert svc.base in browser.find_element(By.ID, "webauthn-status").text
    assert browser.find_element(By.ID, "use-key").get_attribute("disabled") is not None
    shoot(browser, shots, "key-wrong-host")

    # A browser without WebAuthn (the API removed before any page script runs).
    hidden = browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {
        "source": "delete window.PublicKeyCredential;"})["identifier"]
    try:
        password_step(browser, svc.base, "wrong-host")
        browser.find_element(By.ID, "use-key-instead").click()
        WebDriverWait(browser, 20).until(
            lambda d: "cannot use security keys" in d.find_element(By.ID, "webauthn-status").text)
        assert browser.find_element(By.ID, "use-key").get_attribute("disabled") is not None
        shoot(browser, shots, "key-no-webauthn")
        click(browser, "use-code")
        assert browser.current_url == f"{svc.base}/signin/mfa"
    finally:
        browser.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": hidden})


def test_the_script_is_served_from_the_binary_and_no_page_has_inline_script(keys_portal):
    with urllib.request.urlopen(f"{keys_portal.url}/portal/webauthn.js") as r:
        assert r.headers["Content-Type"].startswith("text/javascript")
        assert b"navigator.credentials" in r.read()
    with urllib.request.urlopen(f"{keys_portal.url}/signin") as r:
        page = r.read().decode()
        assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert "<script>" not in page


def xml_field(tree, tag):
    """The text of the first element named `tag`, whatever its namespace."""
    return next(e.text for e in tree.iter() if e.tag.rsplit("}", 1)[-1] == tag)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def u2f_attestation():
    """A U2F attestation key and its certificate (v3, self-signed), as a key vendor's batch
    certificate would be; the service trusts it directly (security_keys.trust_anchors)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tokengate test U2F batch")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .sign(key, hashes.SHA256()))
    folder = tempfile.mkdtemp()
    path = os.path.join(folder, "u2f-batch.pem")
    with open(path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    yield key, cert, path


@pytest.fixture(scope="module")
def u2f_portal(u2f_attestation):
    """The default attestation policy (browser_attestation = direct, no `none`), plus the
    test's U2F batch certificate as a trust anchor."""
    s = Service({"TOKENGATE_SECURITY_KEYS_TRUST_ANCHORS": u2f_attestation[2]})
    s.base = f"http://tokengate.localhost:{s.addr.rsplit(':', 1)[1]}"
    yield s
    s.stop()


def test_a_u2f_key_registered_through_the_api_signs_in_to_the_portal(
        u2f_portal, u2f_attestation, browser, authenticator):  # noqa: F811
    """The calls `tokengate mfa register-key --protocol u2f` makes (the administrator's
    CreateSecurityKeyRegistrationChallenge, then EnableSecurityKey with the raw U2F
    RegistrationData the key answered, signed by its trusted batch key); the credential's
    private key is then given to the browser's U2F virtual authenticator, and the user,
    who has no TOTP device, signs in to the portal with the key alone as second factor."""
    svc, base = u2f_portal, u2f_portal.base
    batch_key, batch_cert, _ = u2f_attestation
    iam = svc.root_client("iam")
    iam.create_user(UserName="uma")
    iam.create_login_profile(UserName="uma", Password=PASSWORD)
    root = (svc.root["AccessKeyId"], svc.root["SecretAccessKey"])
    iam_call = lambda params: sts_call(svc, root, params, "iam", "2010-05-08")  # noqa: E731
    status, challenge = iam_call({"Action": "CreateSecurityKeyRegistrationChallenge",
                                  "UserName": "uma", "DeviceName": "legacy", "Protocol": "u2f"})
    assert status == 200, ET.tostring(challenge)
    rp_id, origin = xml_field(challenge, "RpId"), xml_field(challenge, "Origin")
    assert origin == base
    # The authenticator's side of U2F REGISTER (U2F raw message formats §4.3).
    credential = ec.generate_private_key(ec.SECP256R1())
    public = credential.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    handle = os.urandom(64)
    client_data = json.dumps({
        "type": "webauthn.create",
        "challenge": b64url(base64.b64decode(xml_field(challenge, "Challenge"))),
        "origin": origin, "crossOrigin": False}, separators=(",", ":")).encode()
    signed = (b"\x00" + hashlib.sha256(rp_id.encode()).digest()
              + hashlib.sha256(client_data).digest() + handle + public)
    signature = batch_key.sign(signed, ec.ECDSA(hashes.SHA256()))
    registration = (b"\x05" + public + bytes([len(handle)]) + handle
                    + batch_cert.public_bytes(serialization.Encoding.DER) + signature)
    status, enabled = iam_call({
        "Action": "EnableSecurityKey", "ChallengeId": xml_field(challenge, "ChallengeId"),
        "ClientDataJSON": base64.b64encode(client_data).decode(),
        "RegistrationData": base64.b64encode(registration).decode()})
    assert status == 200, ET.tostring(enabled)
    serial = xml_field(enabled, "SerialNumber")
    assert xml_field(enabled, "Protocol") == "u2f"
    assert xml_field(enabled, "AttestationResult").startswith("trusted")

    aid = authenticator("u2f")
    browser.execute_cdp_cmd("WebAuthn.addCredential", {"authenticatorId": aid, "credential": {
        "credentialId": base64.b64encode(handle).decode(), "isResidentCredential": False,
        "rpId": rp_id, "signCount": 0,
        "privateKey": base64.b64encode(credential.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())).decode(),
    }})
    browser.get(f"{base}/signin")
    browser.find_element(By.ID, "user_name").send_keys("uma")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    click(browser, "signin")
    # No TOTP device: straight to the key page, whose ceremony starts by itself.
    wait_url(browser, f"{base}/portal")
    creds = exported(text(browser, "session-bash"))
    sts = svc.client("sts", creds["AWS_ACCESS_KEY_ID"], creds["AWS_SECRET_ACCESS_KEY"],
                     creds["AWS_SESSION_TOKEN"])
    assert sts.get_caller_identity()["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/uma"
    claims = jwt.decode(creds["AWS_SESSION_TOKEN"], options={"verify_signature": False})
    assert claims["mfa"]["method"] == "u2f"
    assert claims["mfa"]["device"] == serial
    sign_out(browser, base)


def test_failed_key_sign_ins_lock_the_key_for_the_api_too(
        keys_portal, browser, authenticator):  # noqa: F811
    """Forged signatures count toward the key's lockout exactly as failed API logins do
    (mfa.max_failures = 5): the sixth attempt finds the key locked in the portal, and
    GetSecurityKeyChallenge refuses it too."""
    svc, base = keys_portal, keys_portal.base
    totp, access_key = make_user(svc, "lou")
    aid = authenticator("ctap2")
    sign_in_with_code(browser, base, "lou", totp)
    click(browser, "register-key")
    browser.find_element(By.ID, "device_name").send_keys("k")
    click(browser, "begin")
    WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.ID, "registered"))
    serial = text(browser, "registered-serial").strip()
    sign_out(browser, base)

    browser.execute_cdp_cmd("WebAuthn.setResponseOverrideBits",
                            {"authenticatorId": aid, "isBogusSignature": True})
    password_step(browser, base, "lou")
    browser.find_element(By.ID, "use-key-instead").click()
    WebDriverWait(browser, 20).until(lambda d: "was not accepted" in d.page_source)
    for _ in range(4):
        click(browser, "use-key")
        WebDriverWait(browser, 20).until(lambda d: "was not accepted" in d.page_source)
    # Each refusal went through the API's check (its audit line names the key).
    refused = [line for line in svc.log if '"MFA refused"' in line and serial in line]
    assert len(refused) >= 5, refused
    # Five failures: the key is locked, for the portal and for the API alike.
    browser.get(f"{base}/signin/key")
    assert "locked after repeated failures" in browser.page_source
    assert not browser.find_elements(By.ID, "use-key")
    status, _ = sts_call(svc, access_key, {"Action": "GetSecurityKeyChallenge",
                                           "SerialNumber": serial})
    assert status == 403
    browser.execute_cdp_cmd("WebAuthn.setResponseOverrideBits",
                            {"authenticatorId": aid, "isBogusSignature": False})
