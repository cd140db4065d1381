//! A small client for the AWS query APIs that tokengate serves (STS and IAM): a form POST
//! signed with SigV4, an XML reply parsed into a small owned tree, or the AWS error XML
//! turned into [`ApiCallError::Api`] (sts-iam.md §0, §1.3, §1.4).
//!
//! One [`StsClient`] talks to one endpoint with one set of credentials; `tokengate login`
//! calls `sts`, the `tokengate mfa` commands call `iam` through the same client. Blocking
//! I/O (ureq): a command makes one or two calls and needs no async runtime.
//!
//! Timeouts: [`CONNECT_TIMEOUT`] to connect (DNS, TCP, TLS), [`OVERALL_TIMEOUT`] for the
//! whole exchange. Redirects are not followed (a signed request is never re-sent to another
//! host). Replies are capped at [`MAX_REPLY_BYTES`] and parsed by roxmltree, which refuses
//! DTDs. Secrets in a reply live in zeroizing buffers and no `Debug` here prints them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use time::OffsetDateTime;
use tokengate_token::query::encode_form;
use tokengate_token::sigv4::{HttpRequest, SigningCredentials, sign_request};
use ureq::http::Uri;
use zeroize::Zeroizing;

use crate::aws_config::StaticCredentials;

/// Time allowed to resolve, connect and finish a TLS handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for a whole call, reply body included.
pub const OVERALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Replies larger than this are refused (tokengate's largest is a few KiB).
pub const MAX_REPLY_BYTES: u64 = 1024 * 1024;
/// Elements nested deeper than this are refused (query-API replies nest about five deep).
const MAX_XML_DEPTH: usize = 32;
/// The form's content type, as botocore sends it (sts-iam.md §0).
const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// The query-API `Version` of each service tokengate speaks (botocore service models).
fn api_version(service: &str) -> Option<&'static str> {
    match service {
        "sts" => Some("2011-06-15"),
        "iam" => Some("2010-05-08"),
        _ => None,
    }
}

/// Why a call did not produce a result.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiCallError {
    /// The endpoint URL cannot be used.
    #[error("invalid endpoint URL `{url}`: {reason}")]
    InvalidEndpoint {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The CA bundle cannot be read or holds no certificate.
    #[error("cannot use the CA bundle {}: {reason}", path.display())]
    CaBundle {
        /// The PEM file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The caller named a service this client does not speak.
    #[error("unknown service `{0}` (tokengate speaks sts and iam)")]
    UnknownService(String),
    /// No HTTP exchange: DNS, connection, TLS or timeout.
    #[error("cannot reach tokengate at {url}: {reason}")]
    Unreachable {
        /// The endpoint.
        url: String,
        /// The transport's explanation.
        reason: String,
    },
    /// The service answered with an AWS error document. `Display` is `Code: Message`.
    #[error("{code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// AWS error code, e.g. `AccessDenied`.
        code: String,
        /// AWS error message.
        message: String,
        /// The request id, when the document has one.
        request_id: Option<String>,
    },
    /// The reply is not a query-API document.
    #[error("unexpected reply from {url} (HTTP {status}): {reason}")]
    MalformedReply {
        /// The endpoint.
        url: String,
        /// HTTP status.
        status: u16,
        /// What is wrong with it.
        reason: String,
    },
}

/// One element of a reply: name, own text, child elements. Text is wiped on drop (it may be
/// a secret access key or session token); `Debug` shows names only.
#[derive(Clone, Default)]
pub struct Element {
    name: String,
    text: Zeroizing<String>,
    children: Vec<Element>,
}

impl Element {
    /// The local name (namespace dropped).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The element's own text (its text children, concatenated).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Child elements in document order.
    pub fn children(&self) -> &[Element] {
        &self.children
    }

    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The element at `path` below this one (`&["Credentials", "AccessKeyId"]`).
    pub fn find(&self, path: &[&str]) -> Option<&Element> {
        path.iter().try_fold(self, |el, name| el.child(name))
    }

    /// The text at `path` below this one.
    pub fn text_at(&self, path: &[&str]) -> Option<&str> {
        self.find(path).map(Element::text)
    }

    /// Parses a whole document into its root element, with the same limits as a reply
    /// (callers and tests build replies with it).
    pub fn parse(xml: &str) -> Result<Self, String> {
        let doc = roxmltree::Document::parse(xml).map_err(|e| e.to_string())?;
        Element::from_node(doc.root_element(), 0).map_err(str::to_owned)
    }

    fn from_node(node: roxmltree::Node<'_, '_>, depth: usize) -> Result<Self, &'static str> {
        if depth > MAX_XML_DEPTH {
            return Err("elements nested too deeply");
        }
        let mut el = Element {
            name: node.tag_name().name().to_owned(),
            ..Element::default()
        };
        for child in node.children() {
            if child.is_element() {
                el.children.push(Element::from_node(child, depth + 1)?);
            } else if let Some(text) = child.text().filter(|_| child.is_text()) {
                el.text.push_str(text);
            }
        }
        Ok(el)
    }
}

impl fmt::Debug for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.children.is_empty() {
            write!(f, "<{}/>", self.name)
        } else {
            f.debug_map()
                .entry(&format_args!("{}", self.name), &self.children)
                .finish()
        }
    }
}

/// A successful reply.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status (2xx).
    pub status: u16,
    /// The root element's name, e.g. `GetSessionTokenResponse`.
    pub response: String,
    /// The `…Result` element (empty for actions without one, e.g. `DeleteUser`).
    pub result: Element,
    /// `ResponseMetadata/RequestId`, when present.
    pub request_id: Option<String>,
}

/// A query-API client for one endpoint and one set of credentials. No `Debug` derive: it
/// holds the secret; the manual one shows the endpoint and access key id.
pub struct StsClient {
    agent: ureq::Agent,
    url: String,
    host: String,
    path: String,
    region: String,
    credentials: StaticCredentials,
}

impl fmt::Debug for StsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StsClient")
            .field("url", &self.url)
            .field("region", &self.region)
            .field("access_key_id", &self.credentials.access_key_id)
            .finish_non_exhaustive()
    }
}

impl StsClient {
    /// A client for `endpoint_url` (`http://` or `https://`, optionally with a path), signing
    /// for `region` with `credentials`. `ca_bundle`, a PEM file, replaces the built-in
    /// (Mozilla) trust anchors for `https://`, as `AWS_CA_BUNDLE` does for the AWS SDKs.
    pub fn new(
        endpoint_url: &str,
        region: &str,
        credentials: StaticCredentials,
        ca_bundle: Option<&Path>,
    ) -> Result<Self, ApiCallError> {
        let (url, host, path) = parse_endpoint(endpoint_url)?;
        let mut config = ureq::Agent::config_builder()
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(OVERALL_TIMEOUT))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("tokengate/", env!("CARGO_PKG_VERSION")));
        // Only an https:// endpoint reads the bundle, so a stale AWS_CA_BUNDLE cannot break
        // a plain-HTTP loopback login.
        if let Some(bundle) = ca_bundle.filter(|_| url.starts_with("https://")) {
            config = config.tls_config(tls_with_roots(bundle)?);
        }
        Ok(Self {
            agent: config.build().into(),
            url,
            host,
            path,
            region: region.to_owned(),
            credentials,
        })
    }

    /// The endpoint URL requests go to.
    pub fn endpoint(&self) -> &str {
        &self.url
    }

    /// The long-term access key id requests are signed with.
    pub fn access_key_id(&self) -> &str {
        &self.credentials.access_key_id
    }

    /// Calls `service` (`sts` or `iam`) with `params` (`Action` and its parameters; `Version`
    /// is added). A reply with an AWS error document is [`ApiCallError::Api`].
    pub fn call(&self, service: &str, params: &[(&str, &str)]) -> Result<Reply, ApiCallError> {
        let version =
            api_version(service).ok_or_else(|| ApiCallError::UnknownService(service.into()))?;
        let mut form: Vec<(&str, &str)> = params.to_vec();
        if !form.iter().any(|(k, _)| *k == "Version") {
            form.push(("Version", version));
        }
        let body = Zeroizing::new(encode_form(&form));
        let headers = [
            ("host", self.host.as_str()),
            ("content-type", FORM_CONTENT_TYPE),
        ];
        let request = HttpRequest {
            method: "POST",
            path: &self.path,
            query: "",
            headers: &headers,
            body: body.as_bytes(),
        };
        let signing = SigningCredentials {
            access_key_id: &self.credentials.access_key_id,
            // Built from `String`s, so always UTF-8.
            secret_access_key: self
                .credentials
                .secret_access_key
                .expose_str()
                .unwrap_or_default(),
            session_token: self
                .credentials
                .session_token
                .as_ref()
                .and_then(|t| t.expose_str()),
        };
        let signed = sign_request(
            &request,
            &signing,
            &self.region,
            service,
            OffsetDateTime::now_utc(),
        );
        let mut builder = self.agent.post(&self.url);
        for (name, value) in headers.iter().copied() {
            builder = builder.header(name, value);
        }
        for (name, value) in &signed {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let mut response = builder
            .send(body.as_bytes())
            .map_err(|e| self.unreachable(&e))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_REPLY_BYTES)
            .read_to_string()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => self.malformed(status, "reply too large"),
                other => self.unreachable(&other),
            })?;
        parse_reply(&self.url, status, &Zeroizing::new(text))
    }

    fn unreachable(&self, error: &ureq::Error) -> ApiCallError {
        let reason = match error {
            ureq::Error::Io(e) => e.to_string(),
            ureq::Error::Timeout(which) => format!(
                "no answer in time ({which} timeout; connect {} s, overall {} s)",
                CONNECT_TIMEOUT.as_secs(),
                OVERALL_TIMEOUT.as_secs()
            ),
            ureq::Error::HostNotFound => "host not found".to_owned(),
            other => other.to_string(),
        };
        ApiCallError::Unreachable {
            url: self.url.clone(),
            reason,
        }
    }

    fn malformed(&self, status: u16, reason: &str) -> ApiCallError {
        malformed(&self.url, status, reason)
    }
}

/// Reads the reply `body` that `url` sent with HTTP `status`: a `…Response` document with an
/// optional `…Result` (2xx), or an AWS error document ([`ApiCallError::Api`], any status).
/// Anything else is [`ApiCallError::MalformedReply`]. Never panics, whatever the bytes.
pub fn parse_reply(url: &str, status: u16, body: &str) -> Result<Reply, ApiCallError> {
    let doc = roxmltree::Document::parse(body)
        .map_err(|e| malformed(url, status, &format!("not an XML document ({e})")))?;
    let root = Element::from_node(doc.root_element(), 0)
        .map_err(|reason| malformed(url, status, reason))?;
    if let Some(error) = find_error(&root) {
        return Err(ApiCallError::Api {
            status,
            code: error.text_at(&["Code"]).unwrap_or_default().to_owned(),
            message: error.text_at(&["Message"]).unwrap_or_default().to_owned(),
            request_id: find_request_id(&root),
        });
    }
    if !(200..300).contains(&status) {
        return Err(malformed(
            url,
            status,
            "an error status without an AWS error document",
        ));
    }
    if !root.name.ends_with("Response") {
        return Err(malformed(
            url,
            status,
            "the root element is not `…Response`",
        ));
    }
    let request_id = find_request_id(&root);
    let response = root.name.clone();
    let result = root
        .children
        .iter()
        .find(|c| c.name.ends_with("Result"))
        .cloned()
        .unwrap_or_default();
    Ok(Reply {
        status,
        response,
        result,
        request_id,
    })
}

fn malformed(url: &str, status: u16, reason: &str) -> ApiCallError {
    ApiCallError::MalformedReply {
        url: url.to_owned(),
        status,
        reason: reason.to_owned(),
    }
}

/// `<ErrorResponse><Error><Code/><Message/></Error>…` (STS, IAM) or
/// `<Response><Errors><Error>…` (the EC2 shape): the `Error` element that has a `Code`.
fn find_error(root: &Element) -> Option<&Element> {
    match root.name.as_str() {
        "ErrorResponse" => root.child("Error"),
        "Response" => root.find(&["Errors", "Error"]),
        _ => None,
    }
    .filter(|e| e.child("Code").is_some())
}

/// `ResponseMetadata/RequestId` (success) or `RequestId` (error, a direct child).
fn find_request_id(root: &Element) -> Option<String> {
    root.text_at(&["ResponseMetadata", "RequestId"])
        .or_else(|| root.text_at(&["RequestId"]))
        .map(str::to_owned)
}

/// (URL to send to, `Host` header value to sign, path to sign).
fn parse_endpoint(endpoint_url: &str) -> Result<(String, String, String), ApiCallError> {
    let invalid = |reason| ApiCallError::InvalidEndpoint {
        url: endpoint_url.to_owned(),
        reason,
    };
    let uri: Uri = endpoint_url
        .parse()
        .map_err(|_| invalid("not a URL (expected http://HOST:PORT or https://HOST)"))?;
    let scheme = uri
        .scheme_str()
        .ok_or_else(|| invalid("no scheme (expected http:// or https://)"))?;
    if scheme != "http" && scheme != "https" {
        return Err(invalid("the scheme must be http or https"));
    }
    let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
    if authority.as_str().contains('@') {
        return Err(invalid("user information in the URL is not supported"));
    }
    if authority.host().is_empty() {
        return Err(invalid("no host"));
    }
    if uri.query().is_some() {
        return Err(invalid("a query string is not supported"));
    }
    // Drop a default port from the signed Host header, as botocore does.
    let host = match (scheme, authority.port_u16()) {
        ("http", Some(80)) | ("https", Some(443)) => authority.host().to_owned(),
        _ => authority.as_str().to_owned(),
    };
    let path = match uri.path() {
        "" => "/".to_owned(),
        p => p.to_owned(),
    };
    Ok((
        format!("{scheme}://{}{path}", authority.as_str()),
        host,
        path,
    ))
}

/// TLS settings trusting exactly the certificates in the PEM file `path`.
fn tls_with_roots(path: &Path) -> Result<ureq::tls::TlsConfig, ApiCallError> {
    let error = |reason: String| ApiCallError::CaBundle {
        path: path.to_owned(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| error(e.to_string()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        if let ureq::tls::PemItem::Certificate(cert) = item.map_err(|e| error(e.to_string()))? {
            certs.push(cert);
        }
    }
    if certs.is_empty() {
        return Err(error("no CERTIFICATE in the file".to_owned()));
    }
    Ok(ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
        .build())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    use tokengate_token::secret::Secret;

    use super::*;

    fn creds() -> StaticCredentials {
        StaticCredentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: Secret::from("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".to_owned()),
            session_token: None,
        }
    }

    /// A one-shot HTTP server answering `status` + `body`; returns its URL and a handle that
    /// yields the raw request it received.
    fn serve_once(status: u16, body: &'static str) -> (String, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                head.push_str(&line);
                if line == "\r\n" {
                    break;
                }
            }
            let mut body_in = vec![0; length];
            reader.read_exact(&mut body_in).unwrap();
            let reply = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: text/xml\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(reply.as_bytes()).unwrap();
            head + &String::from_utf8(body_in).unwrap()
        });
        (url, handle)
    }

    const SESSION_REPLY: &str = r#"<GetSessionTokenResponse
  xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetSessionTokenResult><Credentials>
    <SessionToken>tok&amp;en</SessionToken><SecretAccessKey>sec</SecretAccessKey>
    <Expiration>2011-07-11T19:55:29.611Z</Expiration><AccessKeyId>ASIAX</AccessKeyId>
  </Credentials></GetSessionTokenResult>
  <ResponseMetadata><RequestId>58c5dbae-abef-11e0-8cfe-09039844ac7d</RequestId></ResponseMetadata>
</GetSessionTokenResponse>"#;

    #[test]
    fn a_signed_form_post_and_a_parsed_result() {
        let (url, request) = serve_once(200, SESSION_REPLY);
        let client = StsClient::new(&url, "eu-west-1", creds(), None).unwrap();
        let reply = client
            .call(
                "sts",
                &[("Action", "GetSessionToken"), ("DurationSeconds", "900")],
            )
            .unwrap();
        assert_eq!(reply.response, "GetSessionTokenResponse");
        assert_eq!(reply.result.name(), "GetSessionTokenResult");
        assert_eq!(
            reply.result.text_at(&["Credentials", "AccessKeyId"]),
            Some("ASIAX")
        );
        assert_eq!(
            reply.result.text_at(&["Credentials", "SessionToken"]),
            Some("tok&en")
        );
        assert_eq!(
            reply.request_id.as_deref(),
            Some("58c5dbae-abef-11e0-8cfe-09039844ac7d")
        );
        let shown = format!("{reply:?}");
        assert!(
            !shown.contains("sec<") && !shown.contains("tok&en"),
            "{shown}"
        );

        let raw = request.join().unwrap();
        let lower = raw.to_ascii_lowercase();
        assert!(raw.starts_with("POST / HTTP/1.1\r\n"), "{raw}");
        assert!(lower.contains(&format!("host: {}\r\n", url.trim_start_matches("http://"))));
        assert!(lower.contains("content-type: application/x-www-form-urlencoded; charset=utf-8"));
        assert!(lower.contains("authorization: aws4-hmac-sha256 credential=akiaiosfodnn7example/"));
        assert!(raw.contains("/eu-west-1/sts/aws4_request"), "{raw}");
        assert!(lower.contains("x-amz-date: "));
        assert!(raw.ends_with("Action=GetSessionToken&DurationSeconds=900&Version=2011-06-15"));
    }

    #[test]
    fn aws_error_xml_becomes_code_and_message() {
        let (url, _) = serve_once(
            403,
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>\
             <Type>Sender</Type><Code>AccessDenied</Code><Message>MultiFactorAuthentication \
             failed, unable to validate MFA code.  Please verify.</Message></Error>\
             <RequestId>r-1</RequestId></ErrorResponse>",
        );
        let client = StsClient::new(&url, "us-east-1", creds(), None).unwrap();
        let err = client
            .call("sts", &[("Action", "GetSessionToken")])
            .unwrap_err();
        match &err {
            ApiCallError::Api {
                status,
                code,
                request_id,
                ..
            } => {
                assert_eq!((*status, code.as_str()), (403, "AccessDenied"));
                assert_eq!(request_id.as_deref(), Some("r-1"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            err.to_string(),
            "AccessDenied: MultiFactorAuthentication failed, unable to validate MFA code.  \
             Please verify."
        );
    }

    #[test]
    fn replies_that_are_not_query_api_documents_are_refused() {
        let cases = [
            (500, "internal error"),
            (502, "<html><body>bad gateway</body></html>"),
            (200, "<Foo/>"),
            (301, ""),
            (
                200,
                "<!DOCTYPE x [<!ENTITY a \"b\">]><XResponse>&a;</XResponse>",
            ),
            (
                200,
                "<GetCallerIdentityResponse><Unclosed></GetCallerIdentityResponse>",
            ),
        ];
        for (status, body) in cases {
            let (url, _) = serve_once(status, body);
            let client = StsClient::new(&url, "us-east-1", creds(), None).unwrap();
            let err = client
                .call("sts", &[("Action", "GetCallerIdentity")])
                .unwrap_err();
            assert!(
                matches!(err, ApiCallError::MalformedReply { status: s, .. } if s == status),
                "{body}: {err:?}"
            );
        }
        let deep = format!(
            "<AResponse>{}{}</AResponse>",
            "<a>".repeat(40),
            "</a>".repeat(40)
        );
        let deep: &'static str = Box::leak(deep.into_boxed_str());
        let (url, _) = serve_once(200, deep);
        let client = StsClient::new(&url, "us-east-1", creds(), None).unwrap();
        let err = client.call("sts", &[("Action", "X")]).unwrap_err();
        assert!(err.to_string().contains("nested too deeply"), "{err}");
    }

    #[test]
    fn an_action_without_a_result_has_an_empty_one() {
        let (url, _) = serve_once(
            200,
            "<DeleteUserResponse><ResponseMetadata><RequestId>r</RequestId>\
             </ResponseMetadata></DeleteUserResponse>",
        );
        let client = StsClient::new(&url, "us-east-1", creds(), None).unwrap();
        let reply = client.call("iam", &[("Action", "DeleteUser")]).unwrap();
        assert_eq!(reply.result.name(), "");
        assert!(reply.result.children().is_empty());
    }

    #[test]
    fn unreachable_endpoints_say_so() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("http://127.0.0.1:{port}");
        let client = StsClient::new(&url, "us-east-1", creds(), None).unwrap();
        let err = client
            .call("sts", &[("Action", "GetCallerIdentity")])
            .unwrap_err();
        assert!(matches!(err, ApiCallError::Unreachable { .. }));
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("cannot reach tokengate at {url}/: ")),
            "{text}"
        );
    }

    #[test]
    fn endpoint_urls_are_checked() {
        let ok = |u: &str| parse_endpoint(u).unwrap();
        assert_eq!(
            ok("http://127.0.0.1:8787"),
            (
                "http://127.0.0.1:8787/".into(),
                "127.0.0.1:8787".into(),
                "/".into()
            )
        );
        assert_eq!(
            ok("https://sts.example:443/prefix"),
            (
                "https://sts.example:443/prefix".into(),
                "sts.example".into(),
                "/prefix".into()
            )
        );
        assert_eq!(ok("http://h:80/").1, "h");
        assert_eq!(ok("http://[::1]:8787").1, "[::1]:8787");
        for bad in [
            "127.0.0.1:8787",
            "ftp://h/",
            "http://u:p@h/",
            "http://h/?x=1",
            "not a url",
            "",
        ] {
            assert!(
                matches!(
                    parse_endpoint(bad),
                    Err(ApiCallError::InvalidEndpoint { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            StsClient::new("http://h", "r", creds(), None)
                .unwrap()
                .call("s3", &[]),
            Err(ApiCallError::UnknownService(_))
        ));
    }

    #[test]
    fn ca_bundles_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no pem here\n").unwrap();
        let err = StsClient::new("https://h", "r", creds(), Some(&empty)).unwrap_err();
        assert!(err.to_string().contains("no CERTIFICATE"), "{err}");
        let missing = dir.path().join("missing.pem");
        let err = StsClient::new("https://h", "r", creds(), Some(&missing)).unwrap_err();
        assert!(matches!(err, ApiCallError::CaBundle { .. }));
        // A plain-HTTP endpoint does not read it.
        assert!(StsClient::new("http://h", "r", creds(), Some(&missing)).is_ok());
    }
}
