//! A browser as the portal's router tests see it (shared by tests/portal.rs,
//! tests/portal_selfservice.rs and tests/portal_keys.rs): cookies kept, `Origin` and
//! `Sec-Fetch-Site` sent on POST.

#![allow(dead_code)]

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tokengate_verifier::totp::{Generator, TotpParams};
use tower::ServiceExt;

use super::hygiene::{Service, element, encode};

pub const PASSWORD: &str = "Corr3ct-horse-battery";

/// What the browser would send and keep.
pub struct Browser {
    pub cookies: HashMap<String, String>,
    pub origin: Option<&'static str>,
    pub site: Option<&'static str>,
}

pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
    pub headers: axum::http::HeaderMap,
    pub body: String,
}

impl Page {
    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self.body.find(marker).expect("a form token") + marker.len();
        let end = self.body[start..].find('"').unwrap() + start;
        self.body[start..end].to_owned()
    }

    /// The text between `export AWS_…="` and `"`.
    pub fn export(&self, name: &str) -> String {
        let marker = format!("export {name}=&quot;");
        let alt = format!("export {name}=\"");
        let (start, quote) = match self.body.find(&marker) {
            Some(i) => (i + marker.len(), "&quot;"),
            None => (self.body.find(&alt).expect(name) + alt.len(), "\""),
        };
        let end = self.body[start..].find(quote).unwrap() + start;
        self.body[start..end].to_owned()
    }
}

impl Browser {
    pub fn new() -> Self {
        Self {
            cookies: HashMap::new(),
            origin: Some("http://localhost:8787"),
            site: Some("same-origin"),
        }
    }

    pub async fn send(
        &mut self,
        s: &Service,
        method: &str,
        path: &str,
        form: &[(&str, &str)],
    ) -> Page {
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "localhost:8787");
        if method == "POST" {
            req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            if let Some(origin) = self.origin {
                req = req.header(header::ORIGIN, origin);
            }
            if let Some(site) = self.site {
                req = req.header("sec-fetch-site", site);
            }
        }
        if !self.cookies.is_empty() {
            let cookie = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            req = req.header(header::COOKIE, cookie);
        }
        let response = tokengate_server::router(s.state.clone())
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let set_cookies: Vec<String> = headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for c in &set_cookies {
            let pair = c.split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() || c.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        let location = headers
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        Page {
            status,
            location,
            set_cookies,
            headers,
            body: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    pub async fn get(&mut self, s: &Service, path: &str) -> Page {
        self.send(s, "GET", path, &[]).await
    }

    pub async fn post(&mut self, s: &Service, path: &str, form: &[(&str, &str)]) -> Page {
        self.send(s, "POST", path, form).await
    }

    pub async fn password(&mut self, s: &Service, user: &str, password: &str) -> Page {
        let csrf = self.get(s, "/signin").await.csrf();
        self.post(
            s,
            "/signin",
            &[
                ("account", "000000000000"),
                ("user_name", user),
                ("password", password),
                ("csrf", &csrf),
            ],
        )
        .await
    }

    pub async fn code(&mut self, s: &Service, serial: &str, code: &str) -> Page {
        let csrf = self.get(s, "/signin/mfa").await.csrf();
        self.post(
            s,
            "/signin/mfa",
            &[("serial", serial), ("code", code), ("csrf", &csrf)],
        )
        .await
    }

    /// Password and code: signed in, at `/portal`.
    pub async fn sign_in(&mut self, s: &Service, user: &str, serial: &str, g: &Generator) {
        let page = self.password(s, user, PASSWORD).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        let page = self.code(s, serial, &g.code(step(s))).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        assert_eq!(page.location.as_deref(), Some("/portal"), "{}", page.body);
    }

    pub fn session(&self) -> Option<String> {
        self.cookies.get("__Host-tg_session").cloned()
    }
}

/// A user with a password and an enabled virtual MFA device; its serial and generator.
pub async fn user_with_mfa(s: &Service, name: &str) -> (String, Generator) {
    s.user(name).await;
    s.ok(
        &s.root,
        &[
            ("Action", "CreateLoginProfile"),
            ("UserName", name),
            ("Password", PASSWORD),
        ],
    )
    .await;
    let body = s
        .ok(
            &s.root,
            &[
                ("Action", "CreateVirtualMFADevice"),
                ("VirtualMFADeviceName", &format!("{name}-phone")),
            ],
        )
        .await;
    let serial = element(&body, "SerialNumber").unwrap();
    let base32 = data_encoding::BASE64
        .decode(element(&body, "Base32StringSeed").unwrap().as_bytes())
        .unwrap();
    let seed = data_encoding::BASE32_NOPAD
        .decode(
            std::str::from_utf8(&base32)
                .unwrap()
                .trim_end_matches('=')
                .as_bytes(),
        )
        .unwrap();
    let generator = Generator::new(&seed, TotpParams::AWS);
    let step = step(s);
    s.ok(
        &s.root,
        &[
            ("Action", "EnableMFADevice"),
            ("UserName", name),
            ("SerialNumber", &serial),
            ("AuthenticationCode1", &generator.code(step - 1)),
            ("AuthenticationCode2", &generator.code(step)),
        ],
    )
    .await;
    // The enable consumed this step's code: the next sign-in waits for the next one.
    s.advance(30);
    (serial, generator)
}

pub fn step(s: &Service) -> u64 {
    u64::try_from(s.now()).unwrap() / 30
}
