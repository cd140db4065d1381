//! Test harness: runs the real `tokengate` binary on a free loopback port with its own data
//! dir, and talks to it over HTTP/1.1 with SigV4-signed AWS query requests.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokengate_token::query::encode_form;
use tokengate_token::sigv4::{HttpRequest, SigningCredentials, sign_request};

/// The binary under test: Cargo's, or `TOKENGATE_E2E_BIN` when set (a release build, for
/// the measurements some tests print, e.g. the slowloris one of docs/benchmarks.md).
pub fn binary() -> PathBuf {
    std::env::var_os("TOKENGATE_E2E_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_tokengate")))
}

/// A running `tokengate serve`.
pub struct Service {
    pub child: Child,
    pub addr: String,
    pub data_dir: PathBuf,
}

impl Service {
    /// Starts the service on a free port with `data_dir` and extra environment.
    pub fn start(data_dir: &Path, env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(binary());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("TOKENGATE_LOG_FORMAT", "json")
            .env_remove("TOKENGATE_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn tokengate");
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("tokengate exited before it listened")
                .expect("read stderr");
            let v: serde_json::Value = match serde_json::from_str(&line) {
                Ok(v) => v,
                Err(_) => panic!("non-JSON log line: {line}"),
            };
            if let Some(listen) = v["fields"]["listen"].as_str() {
                break listen.to_owned();
            }
        };
        // Keep draining stderr so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            addr,
            data_dir: data_dir.to_owned(),
        }
    }

    /// The root credentials written at first start.
    pub fn root(&self) -> Creds {
        let text = std::fs::read_to_string(self.data_dir.join("root-credentials.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        Creds {
            access_key_id: v["AccessKeyId"].as_str().unwrap().to_owned(),
            secret: v["SecretAccessKey"].as_str().unwrap().to_owned(),
            token: None,
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.child.wait().unwrap();
        std::mem::forget(self);
        status
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        std::mem::forget(self);
    }

    /// A raw GET.
    pub fn get(&self, path: &str) -> Reply {
        http(&self.addr, "GET", path, &[], b"")
    }

    /// A signed query-API POST for `service` ("sts" or "iam").
    pub fn call(&self, creds: &Creds, service: &str, params: &[(&str, &str)]) -> Reply {
        self.call_at(creds, service, params, time::OffsetDateTime::now_utc())
    }

    /// Like `call`, signed at `when`.
    pub fn call_at(
        &self,
        creds: &Creds,
        service: &str,
        params: &[(&str, &str)],
        when: time::OffsetDateTime,
    ) -> Reply {
        self.call_via(None, creds, service, params, when)
    }

    /// Like `call`, from the local address `source` (e.g. 127.0.0.2, another loopback
    /// address) when given.
    pub fn call_from(
        &self,
        source: std::net::IpAddr,
        creds: &Creds,
        service: &str,
        params: &[(&str, &str)],
    ) -> Reply {
        self.call_via(
            Some(source),
            creds,
            service,
            params,
            time::OffsetDateTime::now_utc(),
        )
    }

    fn call_via(
        &self,
        source: Option<std::net::IpAddr>,
        creds: &Creds,
        service: &str,
        params: &[(&str, &str)],
        when: time::OffsetDateTime,
    ) -> Reply {
        let version = if service == "iam" {
            "2010-05-08"
        } else {
            "2011-06-15"
        };
        let mut all = params.to_vec();
        all.push(("Version", version));
        let body = encode_form(&all);
        let headers = [
            ("host", self.addr.as_str()),
            (
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
        ];
        let req = HttpRequest {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body: body.as_bytes(),
        };
        let signing = SigningCredentials {
            access_key_id: &creds.access_key_id,
            secret_access_key: &creds.secret,
            session_token: creds.token.as_deref(),
        };
        let signed = sign_request(&req, &signing, "us-east-1", service, when);
        let mut all_headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        all_headers.extend(signed);
        let refs: Vec<(&str, &str)> = all_headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        http_via(source, &self.addr, "POST", "/", &refs, body.as_bytes())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Credentials for signing.
#[derive(Debug, Clone)]
pub struct Creds {
    pub access_key_id: String,
    pub secret: String,
    pub token: Option<String>,
}

/// An HTTP reply.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    /// The text of the first `<name>…</name>`.
    pub fn xml(&self, name: &str) -> Option<String> {
        let open = format!("<{name}>");
        let close = format!("</{name}>");
        let start = self.body.find(&open)? + open.len();
        let end = self.body[start..].find(&close)? + start;
        Some(self.body[start..end].to_owned())
    }

    /// The AWS error code, if this is an error.
    pub fn code(&self) -> Option<String> {
        self.xml("Code")
    }
}

/// A TCP connection to `addr` from the local address `source`.
pub fn connect_from(source: std::net::IpAddr, addr: &str) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(std::net::SocketAddr::new(source, 0)).unwrap();
        let stream = socket.connect(addr.parse().unwrap()).await.unwrap();
        let stream = stream.into_std().unwrap();
        stream.set_nonblocking(false).unwrap();
        stream
    })
}

/// One HTTP/1.1 request with `Connection: close`.
pub fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    http_via(None, addr, method, path, headers, body)
}

/// Like [`http`], from the local address `source` when given.
pub fn http_via(
    source: Option<std::net::IpAddr>,
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut stream = match source {
        Some(source) => connect_from(source, addr),
        None => TcpStream::connect(addr).unwrap(),
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("host: {addr}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Reply { status, body }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}
