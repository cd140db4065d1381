//! `tokengate mfa …` against a running service: a hardware fob imported under its vendor
//! serial logs in; enroll refuses to start without codes or a terminal.

use std::process::{Command, Stdio};

use tokengate_verifier::totp::{Generator, TotpParams};

use crate::harness::{Creds, Service, binary};

fn mfa(svc: &Service, args: &[&str]) -> std::process::Output {
    Command::new(binary())
        .arg("mfa")
        .args(args)
        .arg("--root-credentials")
        .arg(svc.data_dir.join("root-credentials.json"))
        .args(["--endpoint-url", &format!("http://{}", svc.addr)])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn an_imported_fob_logs_in_under_its_vendor_serial() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &[]);
    let root = svc.root();
    let r = svc.call(
        &root,
        "iam",
        &[("Action", "CreateUser"), ("UserName", "bob")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = svc.call(
        &root,
        "iam",
        &[("Action", "CreateAccessKey"), ("UserName", "bob")],
    );
    let bob = Creds {
        access_key_id: r.xml("AccessKeyId").unwrap(),
        secret: r.xml("SecretAccessKey").unwrap(),
        token: None,
    };
    // A vendor seed file in hex, as fob vendors ship them.
    let seed: Vec<u8> = (1..=20).collect();
    let seed_file = dir.path().join("GAHT12345678.seed");
    std::fs::write(&seed_file, data_encoding::HEXLOWER.encode(&seed) + "\n").unwrap();
    let seed_path = seed_file.to_str().unwrap();
    let out = mfa(
        &svc,
        &[
            "import-fob",
            "--serial",
            "GAHT12345678",
            "--seed-file",
            seed_path,
            "--seed-format",
            "hex",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let again = mfa(
        &svc,
        &[
            "import-fob",
            "--serial",
            "GAHT12345678",
            "--seed-file",
            seed_path,
            "--seed-format",
            "hex",
        ],
    );
    assert!(!again.status.success());
    assert!(
        text(&again).contains("EntityAlreadyExists"),
        "{}",
        text(&again)
    );

    let generator = Generator::new(&seed, TotpParams::AWS);
    let step = TotpParams::AWS.step_at(time::OffsetDateTime::now_utc().unix_timestamp());
    let (c1, c2) = (generator.code(step - 4), generator.code(step - 3));
    let out = mfa(
        &svc,
        &[
            "enable",
            "--user-name",
            "bob",
            "--serial",
            "GAHT12345678",
            "--code1",
            &c1,
            "--code2",
            &c2,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = mfa(&svc, &["list", "--user-name", "bob"]);
    assert!(
        text(&out).contains("bob\tGAHT12345678\tenabled "),
        "{}",
        text(&out)
    );

    let code = generator.code(step);
    let r = svc.call(
        &bob,
        "sts",
        &[
            ("Action", "GetSessionToken"),
            ("SerialNumber", "GAHT12345678"),
            ("TokenCode", &code),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.xml("AccessKeyId").unwrap().starts_with("ASIA"));
}

#[test]
fn enroll_without_codes_or_terminal_fails_before_creating_anything() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &[]);
    let root = svc.root();
    svc.call(
        &root,
        "iam",
        &[("Action", "CreateUser"), ("UserName", "carol")],
    );
    let out = Command::new("setsid")
        .arg(binary())
        .args([
            "mfa",
            "enroll",
            "--user-name",
            "carol",
            "--name",
            "carol-phone",
        ])
        .arg("--root-credentials")
        .arg(svc.data_dir.join("root-credentials.json"))
        .args(["--endpoint-url", &format!("http://{}", svc.addr)])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("pass --code1 and --code2"),
        "{}",
        text(&out)
    );
    let r = svc.call(&root, "iam", &[("Action", "ListVirtualMFADevices")]);
    assert!(
        !r.body.contains("carol-phone"),
        "a device was left behind: {}",
        r.body
    );
}

/// `tokengate mfa list` as the AWS CLI would run: keys from the credential chain.
fn mfa_with_env(
    svc: &Service,
    home: &std::path::Path,
    env: &[(&str, &str)],
    args: &[&str],
) -> String {
    let mut cmd = Command::new(binary());
    for var in [
        "AWS_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_IAM",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd
        .arg("mfa")
        .args(args)
        .env("HOME", home)
        .env("AWS_CONFIG_FILE", home.join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"))
        .env("AWS_ENDPOINT_URL", format!("http://{}", svc.addr))
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    format!("{}{}", out.status.success(), text(&out))
}

#[test]
fn mfa_commands_take_root_keys_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path(), &[]);
    let root = svc.root();
    let keys = [
        ("AWS_ACCESS_KEY_ID", root.access_key_id.as_str()),
        ("AWS_SECRET_ACCESS_KEY", root.secret.as_str()),
    ];
    // No AWS files at all: the environment's keys sign.
    let out = mfa_with_env(&svc, home.path(), &keys, &["list"]);
    assert!(out.starts_with("trueNo MFA devices."), "{out}");
    // Half a pair is an error that says so.
    let out = mfa_with_env(&svc, home.path(), &keys[..1], &["list"]);
    assert!(out.starts_with("false"), "{out}");
    assert!(out.contains("AWS_SECRET_ACCESS_KEY is not"), "{out}");
    // Nothing anywhere: the message names both places.
    let out = mfa_with_env(&svc, home.path(), &[], &["list"]);
    assert!(out.contains("profile `default` is not in"), "{out}");
    assert!(out.contains("AWS_ACCESS_KEY_ID"), "{out}");
    // --profile wins over the environment, as in the AWS CLI: a bad profile's keys fail.
    std::fs::write(
        home.path().join("credentials"),
        "[other]\naws_access_key_id = AKIAOTHER\naws_secret_access_key = x\n",
    )
    .unwrap();
    let out = mfa_with_env(&svc, home.path(), &keys, &["list", "--profile", "other"]);
    assert!(out.starts_with("false"), "{out}");
    assert!(out.contains("InvalidClientTokenId"), "{out}");
    // AWS_PROFILE does not: the environment's keys still sign.
    let with_profile = [keys[0], keys[1], ("AWS_PROFILE", "other")];
    let out = mfa_with_env(&svc, home.path(), &with_profile, &["list"]);
    assert!(out.starts_with("true"), "{out}");
}
