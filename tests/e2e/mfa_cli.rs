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
