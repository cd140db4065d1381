"""The portal's self-service pages (issue 13, docs/portal.md) in a real browser: Debian's
headless Chromium through Debian's chromedriver, offline, with the fixtures of
test_portal.py (a missing browser is a failure, never a skip).

A user without a device enrols an authenticator app at sign-in (pyotp codes from the secret
the page shows), then signs in with it; a user under AWS's "manage your own MFA" policy adds
and removes their own devices but not another user's; a user without the permission meets
the AccessDenied page; a password is changed and the new one signs in; the copy button puts
the snippet on the clipboard. Screenshots go where test_portal.py puts them.
"""

import json
import time

import pyotp
import pytest

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from conftest import Service
from test_policies import SELF_MANAGE_MFA
from test_portal import PASSWORD, browser, click, gone, shoot, shots, text  # noqa: F401 (fixtures)

NEW_PASSWORD = "A-n3w-and-l0nger-one!"


@pytest.fixture(scope="module")
def portal():
    s = Service()  # mfa.required = true, the default
    iam = s.root_client("iam")
    arn = iam.create_policy(PolicyName="SelfManageMFA",
                            PolicyDocument=json.dumps(SELF_MANAGE_MFA))["Policy"]["Arn"]
    iam.create_group(GroupName="mfa-users")
    iam.attach_group_policy(GroupName="mfa-users", PolicyArn=arn)
    yield s
    s.stop()


def base(portal):
    return f"http://localhost:{portal.addr.rsplit(':', 1)[1]}"


def user(portal, name, group=True):
    iam = portal.root_client("iam")
    iam.create_user(UserName=name)
    iam.create_login_profile(UserName=name, Password=PASSWORD)
    if group:
        iam.add_user_to_group(GroupName="mfa-users", UserName=name)


def device(portal, name):
    """An enabled virtual device for `name`, made through the API: (serial, totp, used step)."""
    iam = portal.root_client("iam")
    d = iam.create_virtual_mfa_device(VirtualMFADeviceName=f"{name}-phone")["VirtualMFADevice"]
    totp = pyotp.TOTP(d["Base32StringSeed"].decode())
    step = int(time.time()) // 30
    iam.enable_mfa_device(UserName=name, SerialNumber=d["SerialNumber"],
                          AuthenticationCode1=totp.at((step - 1) * 30),
                          AuthenticationCode2=totp.at(step * 30))
    return d["SerialNumber"], totp, step


def next_code(totp, used):
    """A code of a step after `used` that the ±1-step window accepts now (waits if needed)."""
    while True:
        now = int(time.time()) // 30
        for step in (now, now + 1):
            if step > used:
                return step, totp.at(step * 30)
        time.sleep(1)


def sign_in(driver, portal, name, password=PASSWORD):
    driver.get(f"{base(portal)}/signin")
    driver.find_element(By.ID, "user_name").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    click(driver, "signin")


def sign_in_with_code(driver, portal, name, totp, used, password=PASSWORD):
    sign_in(driver, portal, name, password)
    assert driver.current_url == f"{base(portal)}/signin/mfa", driver.page_source
    step, code = next_code(totp, used)
    driver.find_element(By.ID, "code").send_keys(code)
    click(driver, "verify")
    assert driver.current_url == f"{base(portal)}/portal", driver.page_source
    return step


def sign_out(driver, portal):
    driver.get(f"{base(portal)}/portal/security")
    click(driver, "signout")
    assert driver.get_cookie("__Host-tg_session") is None


def enrol_in_page(driver, shots=None, shot=None):
    """On an enrol page: reads the secret, types two consecutive codes with the keyboard
    (Tab between the fields, Enter to submit). Returns (serial, totp, used step)."""
    svg = driver.find_element(By.CSS_SELECTOR, "figure.qr svg")
    assert svg.get_attribute("role") == "img" and svg.get_attribute("aria-label")
    secret = text(driver, "secret")
    serial = text(driver, "serial")
    if shots:
        shoot(driver, shots, shot)
    totp = pyotp.TOTP(secret)
    step = int(time.time()) // 30
    field = driver.find_element(By.ID, "code1")
    field.send_keys(totp.at((step - 1) * 30), Keys.TAB)
    active = driver.switch_to.active_element
    assert active.get_attribute("id") == "code2"
    active.send_keys(totp.at(step * 30), Keys.ENTER)
    return serial, totp, step, field


def test_a_user_without_a_device_enrols_one_at_sign_in(portal, browser, shots):
    user(portal, "hana")
    sign_in(browser, portal, "hana")
    assert browser.current_url == f"{base(portal)}/portal/security"
    assert "Set up multi-factor authentication" in browser.page_source
    assert browser.find_element(By.ID, "device_name").get_attribute("value") == "hana"
    shoot(browser, shots, "enrol-first")
    click(browser, "create")
    serial, totp, step, field = enrol_in_page(browser, shots, "enrol-qr")
    assert serial == "arn:aws:iam::000000000000:mfa/hana"
    WebDriverWait(browser, 15).until(gone(field))
    # Enabled; the MFA step asks for a code of the new device.
    assert browser.current_url == f"{base(portal)}/signin/mfa", browser.page_source
    options = [o.get_attribute("value") for o in browser.find_elements(By.CSS_SELECTOR, "#serial option")]
    assert options == [serial]
    used, code = next_code(totp, step)
    browser.find_element(By.ID, "code").send_keys(code)
    click(browser, "verify")
    assert browser.current_url == f"{base(portal)}/portal", browser.page_source

    # Sign out, and in again with the new device.
    sign_out(browser, portal)
    sign_in_with_code(browser, portal, "hana", totp, used)
    listed = portal.root_client("iam").list_mfa_devices(UserName="hana")["MFADevices"]
    assert [d["SerialNumber"] for d in listed] == [serial]
    sign_out(browser, portal)


def test_the_manage_own_mfa_policy_lets_a_user_manage_only_their_own(portal, browser, shots):
    user(portal, "ivan")
    user(portal, "judy")
    ivan_serial, ivan, used = device(portal, "ivan")
    judy_serial, _, _ = device(portal, "judy")
    sign_in_with_code(browser, portal, "ivan", ivan, used)
    click(browser, "security")
    assert browser.current_url == f"{base(portal)}/portal/security"
    assert ivan_serial in browser.page_source and judy_serial not in browser.page_source

    # Add a second device in the browser.
    browser.find_element(By.ID, "device_name").clear()
    browser.find_element(By.ID, "device_name").send_keys("ivan-tablet")
    click(browser, "create")
    serial, _, _, field = enrol_in_page(browser)
    WebDriverWait(browser, 15).until(gone(field))
    assert browser.current_url.endswith("/portal/security?done=enabled"), browser.page_source
    assert text(browser, "done") == "Your MFA device is enabled."
    assert serial in browser.page_source
    shoot(browser, shots, "security")

    # Judy's device, through a re-pointed deactivate button: not ivan's to deactivate.
    browser.execute_script(
        "document.querySelector('form[action=\"/portal/mfa/deactivate\"] input[name=serial]')"
        ".value = arguments[0]", judy_serial)
    click(browser, "deactivate-0")
    assert f"MFA device with serial number {judy_serial} does not exist." in browser.page_source
    listed = portal.root_client("iam").list_mfa_devices(UserName="judy")["MFADevices"]
    assert [d["SerialNumber"] for d in listed] == [judy_serial]

    # His own second device: deactivated.
    rows = browser.find_elements(By.CSS_SELECTOR, "table.devices tbody tr")
    index = [i for i, r in enumerate(rows) if serial in r.text][0]
    click(browser, f"deactivate-{index}")
    assert text(browser, "done") == "The MFA device was deactivated."
    listed = portal.root_client("iam").list_mfa_devices(UserName="ivan")["MFADevices"]
    assert [d["SerialNumber"] for d in listed] == [ivan_serial]
    sign_out(browser, portal)


def test_without_the_permission_the_page_says_access_denied(portal, browser, shots):
    user(portal, "kim", group=False)
    serial, totp, used = device(portal, "kim")
    sign_in_with_code(browser, portal, "kim", totp, used)
    browser.get(f"{base(portal)}/portal/security")
    assert "is not authorized to perform: iam:ListMFADevices" in text(browser, "list-denied")
    click(browser, "create")
    assert browser.title == "Access denied · tokengate"
    assert text(browser, "permission") == "iam:CreateVirtualMFADevice"
    assert text(browser, "denied").startswith(
        "User: arn:aws:iam::000000000000:user/kim is not authorized to perform: "
        "iam:CreateVirtualMFADevice on resource: arn:aws:iam::000000000000:mfa/kim")
    shoot(browser, shots, "access-denied")
    sign_out(browser, portal)


def test_a_password_is_changed_in_the_browser(portal, browser, shots):
    iam = portal.root_client("iam")
    iam.update_account_password_policy(MinimumPasswordLength=14, RequireSymbols=True,
                                       AllowUsersToChangePassword=True)
    user(portal, "lena", group=False)
    serial, totp, used = device(portal, "lena")
    used = sign_in_with_code(browser, portal, "lena", totp, used)
    browser.get(f"{base(portal)}/portal/security")
    click(browser, "change-password")
    assert "At least 14 characters." in browser.page_source
    for field, value in [("old_password", PASSWORD), ("new_password", "Sh0rt!"),
                         ("confirm_password", "Sh0rt!")]:
        browser.find_element(By.ID, field).send_keys(value)
    click(browser, "change")
    assert "minimum length of 14" in text(browser, "error"), browser.page_source
    shoot(browser, shots, "portal-password")
    for field, value in [("old_password", PASSWORD), ("new_password", NEW_PASSWORD),
                         ("confirm_password", NEW_PASSWORD)]:
        browser.find_element(By.ID, field).send_keys(value)
    click(browser, "change")
    assert text(browser, "done") == "Your password was changed."
    sign_out(browser, portal)

    sign_in(browser, portal, "lena")  # the old one no longer works
    assert "Your authentication information is incorrect" in browser.page_source
    sign_in_with_code(browser, portal, "lena", totp, used, password=NEW_PASSWORD)
    sign_out(browser, portal)


def test_the_copy_button_copies_the_snippet(portal, browser, shots):
    user(portal, "mona", group=False)
    serial, totp, used = device(portal, "mona")
    sign_in_with_code(browser, portal, "mona", totp, used)
    browser.execute_cdp_cmd("Browser.grantPermissions", {
        "origin": base(portal),
        "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"],
    })
    process = text(browser, "session-process")
    assert "credential_process = tokengate login --profile mona\n" in process
    assert f"mfa_serial = {serial}" in process
    assert "in 1 hour" in text(browser, "session-expiry")
    for snippet in ["session-bash", "session-process"]:
        button = browser.find_element(By.CSS_SELECTOR, f"button[data-copy='{snippet}']")
        assert button.is_displayed()  # the script showed it
        button.click()
        copied = browser.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "navigator.clipboard.readText().then(done, e => done('ERROR ' + e));")
        assert copied == text(browser, snippet), copied
        assert button.text == "Copied"
    browser.execute_script("window.scrollTo(0, 0)")
    shoot(browser, shots, "portal-copy")
    # Without script the snippets are plain selectable text and the buttons stay hidden.
    browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    browser.get(f"{base(portal)}/portal")
    assert not browser.find_element(By.CSS_SELECTOR, "button[data-copy='session-bash']").is_displayed()
    assert "export AWS_ACCESS_KEY_ID=" in text(browser, "session-bash")
    browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": False})
    sign_out(browser, portal)
