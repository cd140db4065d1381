"""The account password policy, login profiles and ChangePassword through boto3 and the AWS
CLI against the real binary (portal.md section 3): every policy field round-trips, each
rule is refused with PasswordPolicyViolation, reuse prevention works, and no password is
ever on disk or in the log (scan of the data dir and of every log line, at trace level).

Expiry (MaxPasswordAge, HardExpiry) needs a clock the test can move: it is tested in
crates/server/tests/account_hygiene.rs. Texts portal.md quotes are asserted verbatim; where
AWS publishes none the test says "tokengate's text"."""

import datetime
import json
import os

import pytest
from botocore.exceptions import ClientError

from conftest import Service
from test_foundation import aws_cli
from test_iam_entities import expect_status, validation
from test_policies import ACCOUNT

# Every password this module sends; none may reach the disk or the log.
USED = set()


def pw(text):
    USED.add(text)
    return text


@pytest.fixture(scope="module")
def pw_svc():
    """A service logging everything (trace), so that the log scan means something."""
    s = Service({"TOKENGATE_MFA_REQUIRED": "false", "TOKENGATE_LOG_LEVEL": "trace"})
    yield s
    s.stop()


def user_with_key(svc, name):
    iam = svc.root_client("iam")
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return svc.client("iam", key["AccessKeyId"], key["SecretAccessKey"])


FULL_POLICY = {
    "MinimumPasswordLength": 14,
    "RequireSymbols": True,
    "RequireNumbers": True,
    "RequireUppercaseCharacters": True,
    "RequireLowercaseCharacters": True,
    "AllowUsersToChangePassword": True,
    "MaxPasswordAge": 90,
    "PasswordReusePrevention": 24,
    "HardExpiry": True,
}


def test_every_policy_field_round_trips_and_defaults_apply(pw_svc):
    iam = pw_svc.root_client("iam")
    message = expect_status("NoSuchEntity", 404, iam.get_account_password_policy)
    assert message == f"The Password Policy with domain name {ACCOUNT} cannot be found."
    iam.update_account_password_policy(**FULL_POLICY)
    got = iam.get_account_password_policy()["PasswordPolicy"]
    assert got == {**FULL_POLICY, "ExpirePasswords": True}
    # No partial updates: what is left out takes its default, and the optional members go.
    iam.update_account_password_policy(RequireNumbers=True)
    assert iam.get_account_password_policy()["PasswordPolicy"] == {
        "MinimumPasswordLength": 6,
        "RequireSymbols": False,
        "RequireNumbers": True,
        "RequireUppercaseCharacters": False,
        "RequireLowercaseCharacters": False,
        "AllowUsersToChangePassword": False,
        "ExpirePasswords": False,
    }
    # boto3 checks minimums itself; maximums reach the service (portal.md section 3.1).
    for field, value, limit in [
        ("MinimumPasswordLength", 200, 128),
        ("MaxPasswordAge", 1096, 1095),
        ("PasswordReusePrevention", 25, 24),
    ]:
        message = expect_status(
            "ValidationError", 400, iam.update_account_password_policy, **{field: value}
        )
        member = field[0].lower() + field[1:]
        assert message == validation(
            value, member, f"have value less than or equal to {limit}"
        )
    iam.delete_account_password_policy()
    expect_status("NoSuchEntity", 404, iam.get_account_password_policy)
    # moto's text; AWS's is not published.
    message = expect_status("NoSuchEntity", 404, iam.delete_account_password_policy)
    assert message == "The account policy with name PasswordPolicy cannot be found."


def test_the_aws_cli_reads_and_writes_the_policy(pw_svc):
    out = aws_cli(pw_svc, "iam", "get-account-password-policy")
    assert out.returncode != 0
    assert (
        "An error occurred (NoSuchEntity) when calling the GetAccountPasswordPolicy operation: "
        f"The Password Policy with domain name {ACCOUNT} cannot be found." in out.stderr
    ), out.stderr
    out = aws_cli(
        pw_svc, "iam", "update-account-password-policy", "--minimum-password-length", "12",
        "--require-symbols", "--no-require-numbers", "--max-password-age", "30",
        "--password-reuse-prevention", "3", "--no-hard-expiry",
    )
    assert out.returncode == 0, out.stderr
    out = aws_cli(pw_svc, "iam", "get-account-password-policy")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["PasswordPolicy"] == {
        "MinimumPasswordLength": 12,
        "RequireSymbols": True,
        "RequireNumbers": False,
        "RequireUppercaseCharacters": False,
        "RequireLowercaseCharacters": False,
        "AllowUsersToChangePassword": False,
        "ExpirePasswords": True,
        "MaxPasswordAge": 30,
        "PasswordReusePrevention": 3,
        "HardExpiry": False,
    }
    pw_svc.root_client("iam").delete_account_password_policy()


def test_login_profile_lifecycle(pw_svc):
    iam = pw_svc.root_client("iam")
    iam.create_user(UserName="lp-bob")
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    made = iam.create_login_profile(
        UserName="lp-bob", Password=pw("h]6EszR}vJ*m"), PasswordResetRequired=True
    )["LoginProfile"]
    assert made["UserName"] == "lp-bob" and made["PasswordResetRequired"] is True
    assert made["CreateDate"] >= before - datetime.timedelta(seconds=1)
    got = iam.get_login_profile(UserName="lp-bob")["LoginProfile"]
    assert got["PasswordResetRequired"] is True
    message = expect_status(
        "EntityAlreadyExists", 409, iam.create_login_profile,
        UserName="lp-bob", Password=pw("An0ther-pass!"),
    )
    assert message == "Login Profile for user lp-bob already exists."  # tokengate's text
    iam.update_login_profile(UserName="lp-bob", PasswordResetRequired=False)
    # GetLoginProfile leaves PasswordResetRequired out when false (examples-1.json).
    assert "PasswordResetRequired" not in iam.get_login_profile(UserName="lp-bob")["LoginProfile"]
    # (MaxSigninSessionDuration is newer than the pinned botocore: tested in
    # crates/server/tests/account_hygiene.rs.)
    iam.update_login_profile(UserName="lp-bob", Password=pw("Reset-by-admin1"))
    # A user with a password cannot be deleted before it.
    message = expect_status("DeleteConflict", 409, iam.delete_user, UserName="lp-bob")
    assert message == "Cannot delete entity, must delete login profile first."
    iam.delete_login_profile(UserName="lp-bob")
    message = expect_status("NoSuchEntity", 404, iam.get_login_profile, UserName="lp-bob")
    assert message == "Login Profile for User lp-bob cannot be found."
    expect_status("NoSuchEntity", 404, iam.delete_login_profile, UserName="lp-bob")
    expect_status(
        "NoSuchEntity", 404, iam.update_login_profile, UserName="lp-bob", PasswordResetRequired=True
    )
    message = expect_status(
        "NoSuchEntity", 404, iam.create_login_profile, UserName="lp-nobody", Password=pw("Xx1!xxxxxx")
    )
    assert message == "The user with name lp-nobody cannot be found."
    iam.delete_user(UserName="lp-bob")


def test_each_rule_is_refused_with_password_policy_violation(pw_svc):
    iam = pw_svc.root_client("iam")
    iam.create_user(UserName="lp-rules")
    # No policy: IAM's default one (8 characters, three classes of four); AWS's captured texts.
    message = expect_status(
        "PasswordPolicyViolation", 400, iam.create_login_profile,
        UserName="lp-rules", Password=pw("Qz1!"),
    )
    assert message == "Password should have a minimum length of 8"
    message = expect_status(
        "PasswordPolicyViolation", 400, iam.create_login_profile,
        UserName="lp-rules", Password=pw("abcdefg1"),
    )
    assert message == (
        "Password should meet 1 more of the following requirements: Password should have at "
        "least one uppercase letter, Password should have at least one symbol"
    )
    iam.update_account_password_policy(
        MinimumPasswordLength=10, RequireSymbols=True, RequireNumbers=True,
        RequireUppercaseCharacters=True, RequireLowercaseCharacters=True,
    )
    good = "Abcdefgh1!"
    for bad, sentence in [
        ("Abcdefg1!", "Password should have a minimum length of 10"),
        ("abcdefgh1!", "Password should have at least one uppercase letter"),
        ("ABCDEFGH1!", "Password should have at least one lowercase letter"),
        ("Abcdefghi!", "Password should have at least one number"),
        ("Abcdefghi1", "Password should have at least one symbol"),
    ]:
        message = expect_status(
            "PasswordPolicyViolation", 400, iam.create_login_profile,
            UserName="lp-rules", Password=pw(bad),
        )
        assert message == sentence, bad
    iam.create_login_profile(UserName="lp-rules", Password=pw(good))
    message = expect_status(
        "PasswordPolicyViolation", 400, iam.update_login_profile,
        UserName="lp-rules", Password=pw("Sh0rt!"),
    )
    assert message.startswith("Password should have a minimum length of 10")
    # A password outside the model's pattern: a ValidationError that does not echo it.
    message = expect_status(
        "ValidationError", 400, iam.update_login_profile,
        UserName="lp-rules", Password=pw("Secret\u0100value1!"),
    )
    assert "Secret" not in message and "'***'" in message, message
    iam.delete_account_password_policy()


def test_change_password_for_the_caller(pw_svc):
    iam = pw_svc.root_client("iam")
    alice = user_with_key(pw_svc, "lp-alice")
    iam.create_login_profile(UserName="lp-alice", Password=pw("First-pass1!"))
    # Without a permission: refused on her own user ARN.
    with pytest.raises(ClientError) as e:
        alice.change_password(OldPassword="First-pass1!", NewPassword=pw("Second-pass1!"))
    err = e.value.response["Error"]
    assert err["Code"] == "AccessDenied"
    assert (
        f"is not authorized to perform: iam:ChangePassword on resource: "
        f"arn:aws:iam::{ACCOUNT}:user/lp-alice" in err["Message"]
    )
    # AllowUsersToChangePassword grants it (and GetAccountPasswordPolicy), as
    # IAMUserChangePassword does.
    iam.update_account_password_policy(
        AllowUsersToChangePassword=True, PasswordReusePrevention=2, MinimumPasswordLength=8
    )
    assert alice.get_account_password_policy()["PasswordPolicy"]["PasswordReusePrevention"] == 2
    # tokengate's text: AWS's for a wrong old password is not published.
    message = expect_status(
        "AccessDenied", 403, alice.change_password,
        OldPassword=pw("Wrong-pass1!"), NewPassword="Second-pass1!",
    )
    assert message == "The old password was incorrect."
    message = expect_status(
        "PasswordPolicyViolation", 400, alice.change_password,
        OldPassword="First-pass1!", NewPassword="First-pass1!",
    )
    assert message == (
        "Policy constraint violation with password reuse prevention during password change."
    )
    alice.change_password(OldPassword="First-pass1!", NewPassword=pw("Second-pass1!"))
    alice.change_password(OldPassword="Second-pass1!", NewPassword=pw("Third-pass1!"))
    # The last two are remembered; the first has dropped out.
    expect_status(
        "PasswordPolicyViolation", 400, alice.change_password,
        OldPassword="Third-pass1!", NewPassword="Second-pass1!",
    )
    alice.change_password(OldPassword="Third-pass1!", NewPassword="First-pass1!")
    # The managed policy works the same once the account setting is off.
    iam.update_account_password_policy(MinimumPasswordLength=8)
    expect_status(
        "AccessDenied", 403, alice.change_password,
        OldPassword="First-pass1!", NewPassword=pw("Fourth-pass1!"),
    )
    iam.attach_user_policy(
        UserName="lp-alice", PolicyArn="arn:aws:iam::aws:policy/IAMUserChangePassword"
    )
    alice.change_password(OldPassword="First-pass1!", NewPassword="Fourth-pass1!")
    # Root has no password to change (InvalidUserType, botocore's documented text).
    message = expect_status(
        "InvalidUserType", 400, iam.change_password,
        OldPassword="Fourth-pass1!", NewPassword=pw("Fifth-pass1!"),
    )
    assert message == (
        "The request was rejected because the type of user for the transaction was incorrect."
    )
    iam.delete_account_password_policy()


def test_the_aws_cli_changes_a_password(pw_svc):
    iam = pw_svc.root_client("iam")
    iam.create_user(UserName="lp-cli")
    key = iam.create_access_key(UserName="lp-cli")["AccessKey"]
    iam.attach_user_policy(
        UserName="lp-cli", PolicyArn="arn:aws:iam::aws:policy/IAMUserChangePassword"
    )
    out = aws_cli(
        pw_svc, "iam", "create-login-profile", "--user-name", "lp-cli",
        "--password", pw("Cli-pass-one1!"), "--password-reset-required",
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["LoginProfile"]["PasswordResetRequired"] is True
    out = aws_cli(
        pw_svc, "iam", "change-password", "--old-password", "Cli-pass-one1!",
        "--new-password", pw("Cli-pass-two2!"),
        key=(key["AccessKeyId"], key["SecretAccessKey"]),
    )
    assert out.returncode == 0, out.stderr
    # Changing it satisfied the reset.
    got = iam.get_login_profile(UserName="lp-cli")["LoginProfile"]
    assert "PasswordResetRequired" not in got


def test_zz_no_password_on_disk_or_in_the_log(pw_svc):
    """Runs last in the module (pytest keeps file order): every password sent above, in
    neither the data dir's files, the store (SQLite's file or PostgreSQL's rows) nor the log."""
    assert len(USED) >= 20
    files = []
    for root, _, names in os.walk(pw_svc.data):
        for name in names:
            with open(os.path.join(root, name), "rb") as f:
                files.append((name, f.read()))
    if pw_svc.schema is None:
        assert any(name == "tokengate.db" for name, _ in files)
    else:
        assert not any(name == "tokengate.db" for name, _ in files)
    store = pw_svc.stored_bytes()
    files.append(("the store", store))
    log = "".join(pw_svc.log)
    assert "created login profile" in log and "changed own password" in log, "no trace log"
    for password in USED:
        for name, data in files:
            assert password.encode() not in data, f"a password in {name}"
        assert password not in log, "a password in the log"
    # The hashes are there: argon2id PHC strings.
    assert b"$argon2id$v=19$m=19456,t=2,p=1$" in store
