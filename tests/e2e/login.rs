//! `tokengate login` against a real `tokengate serve`: AWS config files in a temp dir, the
//! credential_process JSON on stdout, the cache, and the failure modes a credential_process
//! user meets (no terminal, a refused code, an unreachable endpoint).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tokengate_verifier::totp::{Generator, TotpParams};

use crate::harness::{Creds, Service};

const ACCOUNT: &str = "000000000000";

/// A temp home with `config`, `credentials` and a cache dir, pointed at by the AWS and XDG
/// variables; nothing from the real environment leaks in.
struct AwsFiles {
    dir: tempfile::TempDir,
}

impl AwsFiles {
    fn new(config: &str, credentials: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config"), config).unwrap();
        std::fs::write(dir.path().join("credentials"), credentials).unwrap();
        Self { dir }
    }

    fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache/tokengate")
    }

    fn cache_files(&self) -> Vec<PathBuf> {
        match std::fs::read_dir(self.cache_dir()) {
            Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        self.command_via(None, args)
    }

    /// `tokengate login ARGS`, optionally run through `wrapper` (e.g. `setsid -w`).
    fn command_via(&self, wrapper: Option<&[&str]>, args: &[&str]) -> Command {
        let mut cmd = match wrapper {
            Some([program, rest @ ..]) => {
                let mut c = Command::new(program);
                c.args(rest).arg(crate::harness::binary());
                c
            }
            _ => Command::new(crate::harness::binary()),
        };
        cmd.arg("login").args(args);
        self.isolate(&mut cmd);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Points `cmd` at these files only.
    fn isolate(&self, cmd: &mut Command) {
        for var in [
            "AWS_PROFILE",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_STS",
            "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_CA_BUNDLE",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
        ] {
            cmd.env_remove(var);
        }
        let home = self.dir.path();
        cmd.env("HOME", home)
            .env("AWS_CONFIG_FILE", home.join("config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"))
            .env("XDG_CACHE_HOME", home.join("cache"));
    }

    fn login(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The credential_process document, checked for shape; the credentials in it.
fn process_json(out: &Output) -> (Creds, time::OffsetDateTime) {
    assert!(out.status.success(), "login failed: {}", stderr(out));
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(
        text.ends_with('\n') && text.trim_end().lines().count() == 1,
        "{text}"
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let obj = v.as_object().unwrap();
    let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    assert_eq!(
        keys.len(),
        5,
        "Version, AccessKeyId, SecretAccessKey, SessionToken, Expiration: {keys:?}"
    );
    assert_eq!(v["Version"], 1);
    let expiration = time::OffsetDateTime::parse(
        v["Expiration"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let creds = Creds {
        access_key_id: v["AccessKeyId"].as_str().unwrap().to_owned(),
        secret: v["SecretAccessKey"].as_str().unwrap().to_owned(),
        token: Some(v["SessionToken"].as_str().unwrap().to_owned()),
    };
    assert!(
        creds.access_key_id.starts_with("ASIA"),
        "{}",
        creds.access_key_id
    );
    (creds, expiration)
}

fn caller_arn(svc: &Service, creds: &Creds) -> String {
    let r = svc.call(creds, "sts", &[("Action", "GetCallerIdentity")]);
    assert_eq!(r.status, 200, "{}", r.body);
    r.xml("Arn").unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Alice's long-term key, a service without mandatory MFA, and files for profile `dev`.
fn setup(extra_config: &str) -> (tempfile::TempDir, Service, Creds, AwsFiles) {
    let data = tempfile::tempdir().unwrap();
    let svc = Service::start(data.path(), &[("TOKENGATE_MFA_REQUIRED", "false")]);
    let alice = crate::user_with_key(&svc, &svc.root(), "alice");
    let files = AwsFiles::new(
        &format!(
            "# tokengate\n[profile dev]\nendpoint_url = http://{}\nregion = us-east-1\n\
             {extra_config}",
            svc.addr
        ),
        &format!(
            "[dev]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            alice.access_key_id, alice.secret
        ),
    );
    (data, svc, alice, files)
}

#[test]
fn login_prints_working_credentials_then_serves_them_from_the_cache() {
    let (_data, svc, alice, files) = setup("");
    // (A 900-second session would never be reused: it starts inside the 15-minute window.)
    let first = files.login(&["--profile", "dev", "--duration-seconds", "3600"]);
    let (temp, expiration) = process_json(&first);
    assert_eq!(
        caller_arn(&svc, &temp),
        format!("arn:aws:iam::{ACCOUNT}:user/alice")
    );
    let left = expiration - time::OffsetDateTime::now_utc();
    assert!(
        left > time::Duration::seconds(3550) && left <= time::Duration::seconds(3600),
        "--duration-seconds 3600 gave {left}"
    );
    let err = stderr(&first);
    assert!(
        !err.contains(&temp.secret) && !err.contains(&alice.secret),
        "{err}"
    );

    // One private cache file, holding exactly what was printed.
    let cached = files.cache_files();
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert_eq!(mode(&files.cache_dir()), 0o700);
    assert_eq!(mode(&cached[0]), 0o600);
    assert_eq!(
        std::fs::read(&cached[0]).unwrap(),
        first.stdout.trim_ascii_end()
    );

    // The second run is served from the cache.
    let (again, _) = process_json(&files.login(&["--profile", "dev"]));
    assert_eq!(again.access_key_id, temp.access_key_id);
    assert_eq!(again.token, temp.token);

    // --no-cache asks the service, and leaves the cache as it was.
    let (fresh, _) = process_json(&files.login(&["--profile", "dev", "--no-cache"]));
    assert_ne!(fresh.access_key_id, temp.access_key_id);
    assert_eq!(
        caller_arn(&svc, &fresh),
        format!("arn:aws:iam::{ACCOUNT}:user/alice")
    );
    let (cached_again, _) = process_json(&files.login(&["--profile", "dev"]));
    assert_eq!(cached_again.access_key_id, temp.access_key_id);

    // A corrupt cache file is ignored and replaced.
    std::fs::write(&cached[0], b"{\"Version\": 1, \"AccessKeyId\"").unwrap();
    let repaired = files.login(&["--profile", "dev"]);
    let (new, _) = process_json(&repaired);
    assert_ne!(new.access_key_id, temp.access_key_id);
    assert!(
        stderr(&repaired).contains("ignoring the cached session"),
        "{}",
        stderr(&repaired)
    );
    assert_eq!(
        std::fs::read(&cached[0]).unwrap(),
        repaired.stdout.trim_ascii_end()
    );
}

#[test]
fn the_profile_comes_from_aws_profile_and_the_endpoint_from_the_environment() {
    let closed = closed_port_url();
    let (_data, svc, _alice, files) = setup("");
    // The config points at a closed port; AWS_ENDPOINT_URL_STS wins over it.
    let config = std::fs::read_to_string(files.dir.path().join("config")).unwrap();
    let right = format!("http://{}", svc.addr);
    std::fs::write(
        files.dir.path().join("config"),
        config.replace(&right, &closed),
    )
    .unwrap();
    let out = files
        .command(&["--no-cache"])
        .env("AWS_PROFILE", "dev")
        .env("AWS_ENDPOINT_URL", &closed)
        .env("AWS_ENDPOINT_URL_STS", &right)
        .output()
        .unwrap();
    let (temp, _) = process_json(&out);
    assert_eq!(
        caller_arn(&svc, &temp),
        format!("arn:aws:iam::{ACCOUNT}:user/alice")
    );
    // --endpoint-url beats the environment.
    let out = files
        .command(&["--no-cache", "--endpoint-url", &right])
        .env("AWS_PROFILE", "dev")
        .env("AWS_ENDPOINT_URL_STS", &closed)
        .output()
        .unwrap();
    process_json(&out);
}

#[test]
fn without_a_terminal_or_token_code_login_fails_fast_and_says_what_to_pass() {
    let (_data, _svc, _alice, files) = setup("mfa_serial = arn:aws:iam::000000000000:mfa/alice\n");
    // `setsid` runs login in a new session without a controlling terminal, as the AWS CLI's
    // credential_process often is. Without `setsid`, the test only stands if this process has
    // no terminal either (as under CI); otherwise it cannot be made to hold and fails.
    let wrapper: Option<&[&str]> = if Path::new("/usr/bin/setsid").exists() {
        Some(&["/usr/bin/setsid", "-w"])
    } else if Path::new("/bin/setsid").exists() {
        Some(&["/bin/setsid", "-w"])
    } else {
        assert!(
            std::fs::File::open("/dev/tty").is_err(),
            "install util-linux `setsid` to run this test from a terminal"
        );
        None
    };
    let started = Instant::now();
    let mut child = files
        .command_via(wrapper, &["--profile", "dev"])
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            panic!("login waited for input instead of failing");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    assert!(!status.success());
    assert!(out.stdout.is_empty(), "nothing on stdout when login fails");
    let err = stderr(&out);
    assert!(err.contains("--token-code"), "{err}");
    assert!(err.contains("arn:aws:iam::000000000000:mfa/alice"), "{err}");
    assert!(files.cache_files().is_empty());
}

#[test]
fn a_code_for_an_unknown_device_is_access_denied() {
    let (_data, _svc, _alice, files) =
        setup("mfa_serial = arn:aws:iam::000000000000:mfa/no-such-device\n");
    let out = files.login(&["--profile", "dev", "--token-code", "123456"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert!(err.starts_with("tokengate: AccessDenied: "), "{err}");
    assert!(err.contains("MultiFactorAuthentication failed"), "{err}");

    // A malformed code never leaves the machine.
    let out = files.login(&["--profile", "dev", "--token-code", "12345x"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("6 digits"), "{}", stderr(&out));
}

#[test]
fn an_unknown_security_key_serial_is_refused_by_the_service() {
    // A `u2f/` serial takes the security-key path (tests/e2e/security_keys.rs logs in with
    // real ones); this one does not exist, so the service refuses before any touch.
    let (_data, _svc, _alice, files) =
        setup("mfa_serial = arn:aws:iam::000000000000:u2f/user/alice/fidosecuritykey-1\n");
    let out = files.login(&["--profile", "dev"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert!(
        err.contains("AccessDenied: MultiFactorAuthentication failed, unable to validate"),
        "{err}"
    );
}

#[test]
fn an_unreachable_endpoint_is_named() {
    let url = closed_port_url();
    let files = AwsFiles::new(
        &format!("[default]\nendpoint_url = {url}\n"),
        "[default]\naws_access_key_id = AKIAAAAAAAAAAAAAAAAA\naws_secret_access_key = x\n",
    );
    let started = Instant::now();
    let out = files.login(&[]);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!("tokengate: cannot reach tokengate at {url}/: ")),
        "{err}"
    );
}

#[test]
fn a_missing_profile_or_credentials_names_the_files() {
    let files = AwsFiles::new("[profile other]\nendpoint_url = http://127.0.0.1:1\n", "");
    let out = files.login(&["--profile", "ghost"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("profile `ghost` is not in"), "{err}");
    assert!(
        err.contains("config") && err.contains("credentials"),
        "{err}"
    );
    let out = files.login(&["--profile", "other"]);
    let err = stderr(&out);
    assert!(err.contains("profile `other` has no credentials"), "{err}");
}

/// Now, at least 3 s from a 30 s TOTP step boundary, as unix seconds.
fn settled_now() -> i64 {
    loop {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if (3..=26).contains(&now.rem_euclid(30)) {
            return now;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A virtual MFA device for `user`, enabled with the codes of steps now-4 and now-3; its
/// serial and a generator of its codes.
fn enabled_device(svc: &Service, root: &Creds, user: &str) -> (String, Generator) {
    let r = svc.call(
        root,
        "iam",
        &[
            ("Action", "CreateVirtualMFADevice"),
            ("VirtualMFADeviceName", user),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let serial = r.xml("SerialNumber").unwrap();
    let base32 = data_encoding::BASE64
        .decode(r.xml("Base32StringSeed").unwrap().as_bytes())
        .unwrap();
    let seed = data_encoding::BASE32_NOPAD.decode(&base32).unwrap();
    let generator = Generator::new(&seed, TotpParams::AWS);
    let step = TotpParams::AWS.step_at(settled_now());
    let (c1, c2) = (generator.code(step - 4), generator.code(step - 3));
    let r = svc.call(
        root,
        "iam",
        &[
            ("Action", "EnableMFADevice"),
            ("UserName", user),
            ("SerialNumber", &serial),
            ("AuthenticationCode1", &c1),
            ("AuthenticationCode2", &c2),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    (serial, generator)
}

#[test]
fn login_asks_for_the_code_on_the_terminal_when_mfa_is_required() {
    // `script` gives login a pseudo-terminal as its /dev/tty and types our stdin into it.
    let script = ["/usr/bin/script", "/bin/script"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("this test needs util-linux `script` (a pseudo-terminal for the MFA prompt)");
    let data = tempfile::tempdir().unwrap();
    let svc = Service::start(data.path(), &[]); // mfa.required = true (the default)
    let root = svc.root();
    let alice = crate::user_with_key(&svc, &root, "alice");
    let (serial, generator) = enabled_device(&svc, &root, "alice");
    let files = AwsFiles::new(
        &format!(
            "[profile dev]\nendpoint_url = http://{}\nmfa_serial = {serial}\n",
            svc.addr
        ),
        &format!(
            "[dev]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            alice.access_key_id, alice.secret
        ),
    );
    // Without MFA this service refuses a session.
    let r = svc.call(&alice, "sts", &[("Action", "GetSessionToken")]);
    assert_eq!(r.code().as_deref(), Some("AccessDenied"));

    let code = generator.code(TotpParams::AWS.step_at(settled_now()));
    let login = format!(
        "'{}' login --profile dev",
        crate::harness::binary().display()
    );
    let mut cmd = Command::new(script);
    cmd.args(["-qec", &login, "/dev/null"]);
    files.isolate(&mut cmd);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{code}\n").as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{shown}{}", stderr(&out));
    assert!(
        shown.contains(&format!("Enter MFA code for {serial}: ")),
        "{shown}"
    );
    let start = shown.find("{\"Version\"").expect("the JSON");
    let end = start + shown[start..].find('}').unwrap() + 1;
    let v: serde_json::Value = serde_json::from_str(&shown[start..end]).unwrap();
    let temp = Creds {
        access_key_id: v["AccessKeyId"].as_str().unwrap().to_owned(),
        secret: v["SecretAccessKey"].as_str().unwrap().to_owned(),
        token: Some(v["SessionToken"].as_str().unwrap().to_owned()),
    };
    assert_eq!(
        caller_arn(&svc, &temp),
        format!("arn:aws:iam::{ACCOUNT}:user/alice")
    );

    // The code is spent; the next login is served from the cache without asking.
    let (again, _) = process_json(&files.login(&["--profile", "dev"]));
    assert_eq!(again.access_key_id, temp.access_key_id);
    // Replaying the spent code is refused by the service.
    let out = files.login(&["--profile", "dev", "--no-cache", "--token-code", &code]);
    assert!(
        stderr(&out).starts_with("tokengate: AccessDenied: "),
        "{}",
        stderr(&out)
    );
}

/// `http://127.0.0.1:PORT` where nothing listens.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}
