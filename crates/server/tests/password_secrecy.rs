//! No password in clear on disk or in the logs: every password-bearing call runs with every
//! log event captured (TRACE, all targets) against a store on disk, and then the database
//! files and the captured log are scanned for each password.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/hygiene.rs"]
mod hygiene;

use std::io::Write;
use std::sync::{Arc, Mutex};

use hygiene::{Service, files_under};
use tokengate_server::passwords::{Password, verify_password};

/// The log, as every event wrote it.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_appear_nowhere_on_disk_or_in_logs() {
    let log = Captured::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let s = Service::on_disk(tempfile::tempdir().unwrap());
    let root = s.root.clone();
    let alice = s.user("alice").await;
    let passwords = [
        "Zq8-first-PASSWORD",
        "Zq8-second-PASSWORD",
        "Zq8-third-PASSWORD",
        "Zq8-rejected",
    ];
    s.ok(
        &root,
        &[
            ("Action", "UpdateAccountPasswordPolicy"),
            ("AllowUsersToChangePassword", "true"),
            ("PasswordReusePrevention", "5"),
            ("MinimumPasswordLength", "14"),
        ],
    )
    .await;
    s.ok(
        &root,
        &[
            ("Action", "CreateLoginProfile"),
            ("UserName", "alice"),
            ("Password", passwords[0]),
        ],
    )
    .await;
    s.ok(
        &alice,
        &[
            ("Action", "ChangePassword"),
            ("OldPassword", passwords[0]),
            ("NewPassword", passwords[1]),
        ],
    )
    .await;
    s.ok(
        &root,
        &[
            ("Action", "UpdateLoginProfile"),
            ("UserName", "alice"),
            ("Password", passwords[2]),
        ],
    )
    .await;
    // Refusals too: a wrong old password, a policy violation, a reused password.
    s.iam(
        &alice,
        &[
            ("Action", "ChangePassword"),
            ("OldPassword", passwords[0]),
            ("NewPassword", passwords[3]),
        ],
    )
    .await;
    s.iam(
        &alice,
        &[
            ("Action", "ChangePassword"),
            ("OldPassword", passwords[2]),
            ("NewPassword", passwords[3]),
        ],
    )
    .await;
    s.iam(
        &alice,
        &[
            ("Action", "ChangePassword"),
            ("OldPassword", passwords[2]),
            ("NewPassword", passwords[1]),
        ],
    )
    .await;
    verify_password(&s.state, "alice", &Password::new(passwords[2].to_owned()))
        .await
        .unwrap();
    verify_password(&s.state, "alice", &Password::new(passwords[0].to_owned()))
        .await
        .unwrap();

    let log = log.0.lock().unwrap().clone();
    // The capture works: the handlers' events are in it.
    assert!(contains(&log, "created login profile"), "log not captured");
    assert!(contains(&log, "changed own password"));
    let files = files_under(s.dir.path());
    assert!(files.iter().any(|(name, _)| name.ends_with("tokengate.db")));
    // The hashes are there (proof the scan reads the right bytes)…
    let hash = s
        .state
        .store
        .login_profile("alice")
        .unwrap()
        .unwrap()
        .password_hash;
    let stored = files.iter().any(|(_, bytes)| contains(bytes, &hash));
    assert!(stored, "the current hash is on disk");
    // …the passwords are not, in any file or any log line.
    for password in passwords {
        for (name, bytes) in &files {
            assert!(!contains(bytes, password), "{password} in {name}");
        }
        assert!(!contains(&log, password), "{password} in the log");
    }
}
