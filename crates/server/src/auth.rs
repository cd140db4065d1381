//! Who is calling: SigV4 verification of the request against a long-term key from the store
//! or against temporary credentials (session token + derived secret), in AWS's error order
//! (sts-iam.md §2 item 7): structure, date, scope, session token, access key, signature.

use std::sync::Arc;

use axum::http::StatusCode;
use tokengate_store::{KeyOwner, KeyStatus};
use tokengate_token::keys::{KeyKind, key_kind};
use tokengate_token::session::{MfaContext, SessionClaims, SessionTokenError};
use tokengate_token::sigv4::{self, HttpRequest, SigV4Error};
use tokengate_token::{Principal, Secret};

use crate::error::ApiError;
use crate::state::AppState;

/// The authenticated caller of one request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who.
    pub principal: Principal,
    /// The access key id the request was signed with.
    pub access_key_id: String,
    /// The session, when the request used temporary credentials (shared with the
    /// verified-token cache).
    pub session: Option<Arc<SessionClaims>>,
    /// A second factor verified with this very request (AssumeRole's `SerialNumber` and
    /// `TokenCode`, checked by the chokepoint before authorization).
    pub request_mfa: Option<MfaContext>,
    /// The region the request was signed for (its credential scope).
    pub region: String,
}

impl Caller {
    /// Whether the request was made with temporary credentials.
    pub fn is_session(&self) -> bool {
        self.session.is_some()
    }

    /// Whether the caller's session was created with a verified second factor.
    pub fn mfa_present(&self) -> bool {
        self.session.as_ref().is_some_and(|s| s.mfa.present)
    }

    /// The MFA context this request carries: a factor verified with the request itself,
    /// else the session's when it has one; `None` for long-term keys without one.
    pub fn mfa(&self) -> Option<&MfaContext> {
        self.request_mfa
            .as_ref()
            .or_else(|| self.session.as_ref().map(|s| &s.mfa))
    }
}

impl From<SigV4Error> for ApiError {
    fn from(e: SigV4Error) -> Self {
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::FORBIDDEN);
        ApiError::new(status, e.aws_code(), e.to_string())
    }
}

/// Authenticates `req`; returns the caller and the credential scope's service.
pub async fn authenticate(
    state: &Arc<AppState>,
    req: &HttpRequest<'_>,
) -> Result<(Caller, String), ApiError> {
    let now = state.clock.now();
    let auth = sigv4::parse_authorization(req, now)?;
    let access_key_id = auth.scope.access_key_id.clone();
    let caller = match key_kind(&access_key_id) {
        Some(KeyKind::Temporary) => {
            let token = auth
                .security_token
                .as_deref()
                .ok_or_else(ApiError::unknown_key)?;
            let at = now.unix_timestamp();
            let claims = match state.verifier.verify(token, &access_key_id, at) {
                // Perhaps signed with a key another replica rotated in since this one
                // started: learn the store's keys (at most once a second) and try again.
                Err(SessionTokenError::Invalid)
                    if state.verifier.reload_due(at) && learn_signing_keys(state, at)? =>
                {
                    state.verifier.verify(token, &access_key_id, at)
                }
                verified => verified,
            }
            .map_err(|e| ApiError::new(StatusCode::FORBIDDEN, e.aws_code(), e.to_string()))?;
            let principal = current_principal(state, &claims.principal)?;
            // The secret is a function of the (verified) access key id: derived only when its
            // signing key is not cached.
            sigv4::verify_signature_cached_derived(
                req,
                &auth,
                &state.signing_keys,
                access_key_id.as_bytes(),
                || state.derivation.temporary_secret(&access_key_id),
            )?;
            Caller {
                principal,
                access_key_id: access_key_id.clone(),
                session: Some(claims),
                request_mfa: None,
                region: String::new(),
            }
        }
        Some(KeyKind::LongTerm) => {
            if auth.security_token.is_some() {
                // A session token with a long-term key is not a valid pairing.
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "InvalidClientTokenId",
                    "The security token included in the request is invalid",
                ));
            }
            let (caller, secret) = long_term(state, &access_key_id).await?;
            sigv4::verify_signature_cached(req, &auth, secret.expose(), &state.signing_keys)?;
            caller
        }
        None => return Err(ApiError::unknown_key()),
    };
    let caller = Caller {
        region: auth.scope.region,
        ..caller
    };
    Ok((caller, auth.scope.service))
}

/// Re-reads the store's signing keys now (a token of a key this replica does not know:
/// perhaps another replica rotated it in): the verifier trusts exactly the store's live keys
/// and the signer follows the store's current key ([`crate::key_ring`]). Returns whether
/// verifying again is worth it.
fn learn_signing_keys(state: &AppState, now: i64) -> Result<bool, ApiError> {
    state
        .signer
        .refresh(state.store.as_ref(), &state.verifier, now, true)?;
    Ok(true)
}

/// The session's principal as it is now, found by its unique id: a session outlives
/// nothing it was issued to. A deleted user's sessions — also once a user of the same name
/// exists again, which has another id — are refused like a token that is not ours.
fn current_principal(state: &AppState, principal: &Principal) -> Result<Principal, ApiError> {
    let invalid = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "InvalidClientTokenId",
            "The security token included in the request is invalid",
        )
    };
    let user_id = match principal {
        Principal::Root { .. } => return Ok(principal.clone()),
        Principal::User { user_id, .. } => user_id,
        // A federated user's session lives as long as the IAM user who asked for it.
        Principal::FederatedUser { name, user_id, .. } => {
            state
                .policies
                .user(state.store.as_ref(), user_id)?
                .ok_or_else(invalid)?;
            return Ok(Principal::FederatedUser {
                account: state.account_id.clone(),
                name: name.clone(),
                user_id: user_id.clone(),
            });
        }
        // A role session lives as long as its role: found by the role's unique id, so a
        // deleted role's sessions (and a role re-created under the name) are refused.
        Principal::AssumedRole {
            role_id,
            session_name,
            ..
        } => {
            let role = state
                .policies
                .role(state.store.as_ref(), role_id)?
                .ok_or_else(invalid)?;
            return Ok(Principal::AssumedRole {
                account: state.account_id.clone(),
                role_name: role.role.name.clone(),
                role_path: role.role.path.clone(),
                role_id: role.role.role_id.clone(),
                session_name: session_name.clone(),
            });
        }
    };
    let user = state
        .policies
        .user(state.store.as_ref(), user_id)?
        .ok_or_else(invalid)?;
    Ok(Principal::User {
        account: state.account_id.clone(),
        path: user.user.path.clone(),
        name: user.user.name.clone(),
        user_id: user.user.user_id.clone(),
    })
}

async fn long_term(
    state: &Arc<AppState>,
    access_key_id: &str,
) -> Result<(Caller, Secret), ApiError> {
    // A point read, inline on the worker: handing it to the blocking pool costs more in
    // thread hand-offs than the read itself (ADR 0003).
    let key = state
        .store
        .access_key(access_key_id)?
        .ok_or_else(ApiError::unknown_key)?;
    if key.status != KeyStatus::Active {
        return Err(ApiError::unknown_key());
    }
    let principal = match &key.owner {
        KeyOwner::Root => Principal::Root {
            account: state.account_id.clone(),
        },
        KeyOwner::User(name) => {
            let user = state.store.user(name)?.ok_or_else(ApiError::unknown_key)?;
            Principal::User {
                account: state.account_id.clone(),
                path: user.path,
                name: user.name,
                user_id: user.user_id,
            }
        }
    };
    Ok((
        Caller {
            principal,
            access_key_id: key.access_key_id,
            session: None,
            request_mfa: None,
            region: String::new(),
        },
        key.secret,
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    //! The verified-token cache changes nothing that is refused: each refusal below is
    //! checked on the request right after the same token was answered from the cache.

    use std::sync::atomic::{AtomicI64, Ordering};

    use axum::http::StatusCode;
    use time::OffsetDateTime;
    use tokengate_store::{SqliteStore, Store, User};
    use tokengate_token::sigv4::{SigningCredentials, sign_request};
    use tower::ServiceExt;

    use super::*;
    use crate::config::Config;
    use crate::credentials::{self, Credentials, NewSession};
    use crate::state::{self, Clock};

    const T0: i64 = 1_800_000_000;

    /// A clock the test moves.
    struct Settable(AtomicI64);

    impl Clock for Settable {
        fn now(&self) -> OffsetDateTime {
            OffsetDateTime::from_unix_timestamp(self.0.load(Ordering::SeqCst)).unwrap()
        }
    }

    struct Fixture {
        state: Arc<AppState>,
        clock: Arc<Settable>,
        _dir: tempfile::TempDir,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open_in_memory(&Secret::new(vec![3; 32])).unwrap());
        let config = Config {
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        let clock = Arc::new(Settable(AtomicI64::new(T0)));
        let state = state::open_with_store(config, store, clock.clone()).unwrap();
        state
            .store
            .create_user(&User {
                user_id: "AIDAALICEALICEALICE1".into(),
                name: "alice".into(),
                path: "/".into(),
                created: T0,
            })
            .unwrap();
        Fixture {
            state: Arc::new(state),
            clock,
            _dir: dir,
        }
    }

    /// A 900-second session of alice's.
    fn session(f: &Fixture) -> Credentials {
        credentials::mint_session(
            &f.state,
            NewSession {
                principal: Principal::User {
                    account: f.state.account_id.clone(),
                    path: "/".into(),
                    name: "alice".into(),
                    user_id: "AIDAALICEALICEALICE1".into(),
                },
                src: "AKIAALICEALICEALICE1".into(),
                duration: 900,
                mfa: MfaContext::default(),
                session_policy: None,
                chained: false,
                attributes: Default::default(),
            },
        )
        .unwrap()
    }

    /// GetCallerIdentity signed with `creds` but carrying `token`; the status and the body.
    async fn whoami(f: &Fixture, creds: &Credentials, token: &str) -> (StatusCode, String) {
        let body = "Action=GetCallerIdentity&Version=2011-06-15";
        let host = [("host", "localhost")];
        let req = HttpRequest {
            method: "POST",
            path: "/",
            query: "",
            headers: &host,
            body: body.as_bytes(),
        };
        let signing = SigningCredentials {
            access_key_id: &creds.access_key_id,
            secret_access_key: creds.secret_access_key.expose_str().unwrap(),
            session_token: Some(token),
        };
        let signed = sign_request(&req, &signing, "us-east-1", "sts", f.clock.now());
        let mut builder = axum::http::Request::post("/").header("host", "localhost");
        for (name, value) in signed {
            builder = builder.header(name, value);
        }
        let response = crate::router(Arc::clone(&f.state))
            .oneshot(builder.body(axum::body::Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    /// Answers once (filling the cache), and checks the token is cached.
    async fn answered_and_cached(f: &Fixture, creds: &Credentials) {
        let (status, body) = whoami(f, creds, &creds.session_token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains("user/alice"), "{body}");
        let digest = tokengate_token::verified::digest(&creds.session_token);
        assert!(f.state.verifier.cache().get(&digest).is_some());
    }

    fn refused(status: StatusCode, body: &str, code: &str) {
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(body.contains(&format!("<Code>{code}</Code>")), "{body}");
    }

    #[tokio::test]
    async fn a_deleted_users_cached_token_is_refused_on_the_next_request() {
        let f = fixture();
        let creds = session(&f);
        answered_and_cached(&f, &creds).await;
        f.state.store.delete_user("alice").unwrap();
        let (status, body) = whoami(&f, &creds, &creds.session_token).await;
        refused(status, &body, "InvalidClientTokenId");
    }

    #[tokio::test]
    async fn a_removed_signing_keys_cached_token_is_refused_on_the_next_request() {
        let f = fixture();
        let creds = session(&f);
        answered_and_cached(&f, &creds).await;
        assert!(f.state.verifier.remove_key(&f.state.signer.kid()));
        assert!(f.state.verifier.cache().is_empty());
        // The store still has the key, so this second's reload would bring it back.
        assert!(f.state.verifier.reload_due(T0));
        let (status, body) = whoami(&f, &creds, &creds.session_token).await;
        refused(status, &body, "InvalidClientTokenId");
    }

    #[tokio::test]
    async fn a_token_of_a_key_rotated_in_elsewhere_is_verified_after_one_reload() {
        let f = fixture();
        let creds = session(&f);
        // As if another replica had rotated this key in after this one started.
        assert!(f.state.verifier.remove_key(&f.state.signer.kid()));
        let (status, body) = whoami(&f, &creds, &creds.session_token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(
            f.state
                .verifier
                .jwks()
                .to_string()
                .contains(&f.state.signer.kid())
        );
        // At most one reload a second: a key removed again stays unknown until then.
        assert!(f.state.verifier.remove_key(&f.state.signer.kid()));
        let (status, body) = whoami(&f, &creds, &creds.session_token).await;
        refused(status, &body, "InvalidClientTokenId");
        f.clock.0.store(T0 + 1, Ordering::SeqCst);
        let (status, body) = whoami(&f, &creds, &creds.session_token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    #[tokio::test]
    async fn a_token_that_expired_while_cached_is_refused_on_the_next_request() {
        let f = fixture();
        let creds = session(&f);
        answered_and_cached(&f, &creds).await;
        f.clock.0.store(creds.expiration - 1, Ordering::SeqCst);
        let (status, body) = whoami(&f, &creds, &creds.session_token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        f.clock.0.store(creds.expiration, Ordering::SeqCst);
        let (status, body) = whoami(&f, &creds, &creds.session_token).await;
        refused(status, &body, "ExpiredToken");
        assert!(f.state.verifier.cache().is_empty());
    }

    #[tokio::test]
    async fn a_token_one_byte_off_a_cached_one_is_verified_in_full_and_refused() {
        let f = fixture();
        let creds = session(&f);
        answered_and_cached(&f, &creds).await;
        let token = &creds.session_token;
        for pos in [0, token.len() / 2, token.len() - 2] {
            let mut bytes = token.as_bytes().to_vec();
            bytes[pos] = if bytes[pos] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).unwrap();
            // Signed correctly with the temporary secret: only the token is wrong.
            let (status, body) = whoami(&f, &creds, &tampered).await;
            refused(status, &body, "InvalidClientTokenId");
        }
        assert_eq!(f.state.verifier.cache().len(), 1);
        let (status, body) = whoami(&f, &creds, token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}
