"""The sign-in portal (issue 13, docs/portal.md) in a real browser: Debian's headless
Chromium driven by Selenium through Debian's chromedriver, offline (SE_OFFLINE=true and the
driver path given, so Selenium Manager never runs). A missing browser is a failure, never a
skip: tests/interop.rs (the README's test command) installs `chromium` and `chromium-driver`
with apt-get when they are missing.

The browser signs in with a password and a pyotp code, reads the credentials the portal
shows and hands them to boto3, assumes a listed role, and is refused a role the page did
not list. Each page is saved as a PNG: into TOKENGATE_PORTAL_SCREENSHOTS when set (that is
how docs/portal/*.png are made), else into a temporary directory.
"""

import json
import os
import shutil
import tempfile
import time
import urllib.request

import jwt
import pyotp
import pytest

from conftest import Service

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ACCOUNT = "000000000000"
PASSWORD = "Portal-Passw0rd!"


@pytest.fixture(scope="module")
def portal():
    s = Service()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browser():
    for path in (CHROMIUM, CHROMEDRIVER):
        assert os.access(path, os.X_OK), (
            f"{path} is missing: install Debian's chromium and chromium-driver "
            "(.ci/run does); the browser tests are never skipped"
        )
    os.environ["SE_OFFLINE"] = "true"
    options = Options()
    options.binary_location = CHROMIUM
    for arg in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--window-size=1200,1000",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE *.localhost , "
        "EXCLUDE 127.0.0.1",
    ]:
        options.add_argument(arg)
    driver = webdriver.Chrome(service=DriverService(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shots():
    target = os.environ.get("TOKENGATE_PORTAL_SCREENSHOTS")
    if target:
        os.makedirs(target, exist_ok=True)
        yield target
    else:
        tmp = tempfile.mkdtemp()
        yield tmp
        shutil.rmtree(tmp, ignore_errors=True)


def shoot(driver, shots, name):
    """Saves the whole page (the window grown to the page's height) as NAME.png."""
    path = os.path.join(shots, f"{name}.png")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1200, max(800, min(int(height) + 100, 4000)))
    assert driver.save_screenshot(path), path
    driver.set_window_size(1200, 1000)
    assert os.path.getsize(path) > 1000


def gone(element):
    """A wait condition: `element` left the document (the next page replaced it).
    Chromedriver answers a lookup of a node of the page being replaced either with a stale
    reference or, mid-navigation, with "does not belong to the document"."""
    def check(_driver):
        try:
            element.is_enabled()
            return False
        except StaleElementReferenceException:
            return True
        except WebDriverException as e:
            if "does not belong to the document" in str(e):
                return True
            raise
    return check


def click(driver, element_id):
    """Clicks a submit button and waits until the next page has replaced this one."""
    button = driver.find_element(By.ID, element_id)
    button.click()
    WebDriverWait(driver, 15).until(gone(button))
    WebDriverWait(driver, 15).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


def text(driver, element_id):
    return driver.find_element(By.ID, element_id).get_attribute("textContent")


def exported(block):
    """{"AWS_ACCESS_KEY_ID": …} from the page's bash block."""
    values = {}
    for line in block.strip().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        values[name] = value.strip('"')
    return values


def test_sign_in_with_password_and_totp_then_use_the_credentials(portal, browser, shots):
    iam = portal.root_client("iam")
    iam.create_user(UserName="alice")
    iam.create_login_profile(UserName="alice", Password=PASSWORD)
    device = iam.create_virtual_mfa_device(VirtualMFADeviceName="alice-phone")["VirtualMFADevice"]
    serial = device["SerialNumber"]
    totp = pyotp.TOTP(device["Base32StringSeed"].decode())
    now = time.time()
    iam.enable_mfa_device(
        UserName="alice",
        SerialNumber=serial,
        AuthenticationCode1=totp.at(now - 30),
        AuthenticationCode2=totp.at(now),
    )
    trust_alice = {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/alice"},
            "Action": "sts:AssumeRole",
            "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
        }],
    }
    trust_account = {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": "sts:AssumeRole",
        }],
    }
    iam.create_role(RoleName="dev", AssumeRolePolicyDocument=json.dumps(trust_alice),
                    Description="Developers: deploy to the sandbox")
    iam.create_role(RoleName="admin", AssumeRolePolicyDocument=json.dumps(trust_account))

    port = portal.addr.rsplit(":", 1)[1]
    base = f"http://localhost:{port}"
    browser.get(f"{base}/signin")
    assert browser.title == "Sign in · tokengate"
    browser.find_element(By.ID, "user_name").send_keys("alice")
    browser.find_element(By.ID, "password").send_keys("not-the-password")
    shoot(browser, shots, "signin")
    click(browser, "signin")
    assert "Your authentication information is incorrect" in browser.page_source
    assert browser.find_element(By.ID, "user_name").get_attribute("value") == "alice"
    shoot(browser, shots, "signin-refused")

    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    click(browser, "signin")
    assert browser.current_url == f"{base}/signin/mfa", browser.page_source
    cookies = {c["name"]: c for c in browser.get_cookies()}
    session = cookies["__Host-tg_session"]
    assert session["secure"] and session["httpOnly"] and session["sameSite"] == "Strict"
    pending_id = session["value"]
    # The enable used this step's code; the next step's is within the ±1 window.
    browser.find_element(By.ID, "code").send_keys(totp.at(time.time() + 30))
    shoot(browser, shots, "mfa")
    click(browser, "verify")
    assert browser.current_url == f"{base}/portal", browser.page_source
    assert browser.get_cookie("__Host-tg_session")["value"] != pending_id
    shoot(browser, shots, "portal")

    creds = exported(text(browser, "session-bash"))
    assert creds["AWS_ACCESS_KEY_ID"].startswith("ASIA")
    sts = portal.client("sts", creds["AWS_ACCESS_KEY_ID"], creds["AWS_SECRET_ACCESS_KEY"],
                        creds["AWS_SESSION_TOKEN"])
    assert sts.get_caller_identity()["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/alice"
    claims = jwt.decode(creds["AWS_SESSION_TOKEN"], options={"verify_signature": False})
    assert claims["mfa"]["present"] is True
    assert claims["mfa"]["method"] == "totp"
    assert claims["mfa"]["device"] == serial
    # The other formats carry the same credentials.
    powershell = text(browser, "session-powershell")
    assert f'$Env:AWS_ACCESS_KEY_ID="{creds["AWS_ACCESS_KEY_ID"]}"' in powershell
    assert f'set AWS_ACCESS_KEY_ID={creds["AWS_ACCESS_KEY_ID"]}' in text(browser, "session-cmd")
    assert f'aws_session_token={creds["AWS_SESSION_TOKEN"]}' in text(browser, "session-file")
    with urllib.request.urlopen(f"{base}/portal") as r:  # no cookie: not signed in
        assert r.url.endswith("/signin")

    # Only the role alice may assume is listed.
    assert browser.find_elements(By.ID, "assume-dev")
    assert not browser.find_elements(By.ID, "assume-admin")
    click(browser, "assume-dev")
    assert text(browser, "assumed-arn") == f"arn:aws:sts::{ACCOUNT}:assumed-role/dev/alice"
    shoot(browser, shots, "role")
    role = exported(text(browser, "role-bash"))
    role_sts = portal.client("sts", role["AWS_ACCESS_KEY_ID"], role["AWS_SECRET_ACCESS_KEY"],
                             role["AWS_SESSION_TOKEN"])
    assert role_sts.get_caller_identity()["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/dev/alice"
    role_claims = jwt.decode(role["AWS_SESSION_TOKEN"], options={"verify_signature": False})
    assert role_claims["mfa"]["method"] == "totp"

    # A role the page did not list: its direct POST (the dev button re-pointed) is refused.
    click(browser, "back")
    browser.execute_script(
        "document.querySelector('input[name=role_arn]').value = arguments[0]",
        f"arn:aws:iam::{ACCOUNT}:role/admin",
    )
    click(browser, "assume-dev")
    assert "You may not assume" in browser.page_source
    assert "ASIA" not in browser.page_source
    shoot(browser, shots, "role-refused")

    browser.get(f"{base}/portal")
    click(browser, "signout")
    assert browser.current_url == f"{base}/signin"
    assert browser.get_cookie("__Host-tg_session") is None
    browser.get(f"{base}/portal")
    assert browser.current_url == f"{base}/signin"


def test_a_user_without_a_device_is_told_to_enrol_one(portal, browser, shots):
    iam = portal.root_client("iam")
    iam.create_user(UserName="bob")
    iam.create_login_profile(UserName="bob", Password=PASSWORD)
    port = portal.addr.rsplit(":", 1)[1]
    browser.get(f"http://localhost:{port}/signin")
    browser.find_element(By.ID, "user_name").send_keys("bob")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    click(browser, "signin")
    assert "Set up multi-factor authentication" in browser.page_source
    # A session that may only add a first device (test_portal_selfservice.py goes on).
    assert browser.current_url.endswith("/portal/security")
    shoot(browser, shots, "enrol-mfa")
    click(browser, "cancel")
    assert browser.get_cookie("__Host-tg_session") is None


def test_a_password_that_must_be_changed_comes_first(portal, browser, shots):
    iam = portal.root_client("iam")
    iam.update_account_password_policy(MinimumPasswordLength=12, AllowUsersToChangePassword=True)
    iam.create_user(UserName="carol")
    iam.create_login_profile(UserName="carol", Password=PASSWORD, PasswordResetRequired=True)
    port = portal.addr.rsplit(":", 1)[1]
    base = f"http://localhost:{port}"
    browser.get(f"{base}/signin")
    browser.find_element(By.ID, "user_name").send_keys("carol")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    click(browser, "signin")
    assert browser.current_url == f"{base}/signin/password", browser.page_source
    browser.find_element(By.ID, "old_password").send_keys(PASSWORD)
    browser.find_element(By.ID, "new_password").send_keys("short")
    browser.find_element(By.ID, "confirm_password").send_keys("short")
    click(browser, "change")
    assert "minimum length of 12" in browser.page_source
    shoot(browser, shots, "change-password")
    browser.find_element(By.ID, "old_password").send_keys(PASSWORD)
    browser.find_element(By.ID, "new_password").send_keys("A-much-l0nger-one")
    browser.find_element(By.ID, "confirm_password").send_keys("A-much-l0nger-one")
    click(browser, "change")
    # Changed; carol has no MFA device, so the next page says how to enrol one.
    assert "Set up multi-factor authentication" in browser.page_source
    assert not iam.get_login_profile(UserName="carol")["LoginProfile"].get("PasswordResetRequired")
