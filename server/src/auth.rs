//! Identity: JSON Web Tokens for clients, an API key for the publish endpoints.
//!
//! Authentication is on when a shared secret (`jwt_secret`, HS256/384/512) or a public key PEM
//! file (`jwt_public_key`, RSA: RS*/PS*, EC: ES256/ES384, Ed25519: EdDSA) is configured. Only the
//! algorithms of the configured key's family are accepted, so a token cannot pick its own (no
//! `none`, no HMAC signed with a public key).
//!
//! A client presents its token, in this order of precedence, as
//! - `Authorization: Bearer <token>`,
//! - the `token` query parameter (browsers' `EventSource` cannot set headers),
//! - a WebSocket subprotocol `bearer.<token>` in `Sec-WebSocket-Protocol` (browsers'
//!   `new WebSocket(url, ["herald", "bearer." + token])`). The 101 answer names one offered
//!   protocol, as browsers require: `herald` when it was offered, else the `bearer.` one.
//!
//! A token must be signed by the configured key, carry `sub` (the user id) and `exp`, and, when
//! configured, a matching `aud` and `iss`. An optional `name` claim makes the user an object
//! `{"id": sub, "name": name}`; without it the user is the string `sub`. An optional `rooms`
//! claim (a list of names, `*` matching any run of characters) lists the rooms the user may
//! join; without it every room is allowed. A connection is ended when its token expires
//! (WebSocket close code 4001 "token expired"; an SSE stream simply ends).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use herald_protocol::limits;
use herald_protocol::{ErrorCode, User, UserObject};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, StatusCode};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::config::Config;
pub use crate::config::Secret;

const MAX_USER_ID_CHARS: usize = limits::MAX_USER_ID_CHARS as usize;
const MAX_USER_NAME_CHARS: usize = limits::MAX_USER_NAME_CHARS as usize;

/// The subprotocol prefix that carries a token.
pub const BEARER_PROTOCOL_PREFIX: &str = "bearer.";
/// The application subprotocol echoed in preference to the bearer one.
pub const APP_PROTOCOL: &str = "herald";

/// Why a request is refused before it becomes a connection or a publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Denied {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine code for the JSON body.
    pub code: ErrorCode,
    /// Human text for the JSON body.
    pub message: String,
}

impl Denied {
    /// A refusal.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Denied {
            status,
            code,
            message: message.into(),
        }
    }
}

fn split_list(list: &Option<String>) -> Vec<String> {
    list.iter()
        .flat_map(|l| l.split(','))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The token verifier, present when authentication is on.
pub struct Auth {
    key: DecodingKey,
    validation: Validation,
    leeway: Duration,
}

/// Who a verified token says the client is.
#[derive(Debug)]
pub struct Identity {
    /// The user every frame of this connection speaks as.
    pub user: User,
    /// Room patterns the user may join; `None`: any room.
    pub rooms: Option<Vec<String>>,
    /// The token's `exp`, in seconds since the epoch.
    pub expires_at: Option<u64>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    rooms: Option<Vec<String>>,
    #[serde(default)]
    exp: Option<u64>,
}

impl Auth {
    /// The verifier for the configured key; `None` when authentication is off.
    pub fn from_config(config: &Config) -> anyhow::Result<Option<Auth>> {
        let (key, algorithms) = if let Some(secret) = &config.jwt_secret {
            if secret.expose().len() < 32 {
                tracing::warn!(
                    "jwt_secret is shorter than 32 bytes: HMAC tokens are only as strong as it"
                );
            }
            (
                DecodingKey::from_secret(secret.expose().as_bytes()),
                vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512],
            )
        } else if let Some(path) = &config.jwt_public_key {
            let pem = std::fs::read(path)
                .with_context(|| format!("reading jwt_public_key {}", path.display()))?;
            if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
                (
                    key,
                    vec![
                        Algorithm::RS256,
                        Algorithm::RS384,
                        Algorithm::RS512,
                        Algorithm::PS256,
                        Algorithm::PS384,
                        Algorithm::PS512,
                    ],
                )
            } else if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
                (key, vec![Algorithm::ES256, Algorithm::ES384])
            } else if let Ok(key) = DecodingKey::from_ed_pem(&pem) {
                (key, vec![Algorithm::EdDSA])
            } else {
                anyhow::bail!(
                    "jwt_public_key {} holds no RSA, EC or Ed25519 public key in PEM form",
                    path.display()
                );
            }
        } else {
            return Ok(None);
        };
        let mut validation = Validation::new(algorithms[0]);
        validation.algorithms = algorithms;
        validation.leeway = config.jwt_leeway.as_secs();
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        let audience = split_list(&config.jwt_audience);
        if !audience.is_empty() {
            validation.set_audience(&audience);
            required.push("aud");
        }
        let issuer = split_list(&config.jwt_issuer);
        if !issuer.is_empty() {
            validation.set_issuer(&issuer);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        Ok(Some(Auth {
            key,
            validation,
            leeway: config.jwt_leeway,
        }))
    }

    /// Verifies a token; the error is the text for the 401 answer.
    pub fn verify(&self, token: &str) -> Result<Identity, String> {
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(|e| {
                match e.kind() {
                    ErrorKind::ExpiredSignature => "Token expired",
                    ErrorKind::ImmatureSignature => "Token not valid yet",
                    ErrorKind::InvalidSignature => "Token signature is invalid",
                    ErrorKind::InvalidAudience => "Token audience is not accepted",
                    ErrorKind::InvalidIssuer => "Token issuer is not accepted",
                    ErrorKind::InvalidAlgorithm => "Token algorithm is not accepted",
                    ErrorKind::MissingRequiredClaim(_) => "Token lacks a required claim",
                    _ => "Token is malformed",
                }
                .to_owned()
            })?;
        let claims = data.claims;
        let sub_len = claims.sub.chars().count();
        if sub_len == 0 || sub_len > MAX_USER_ID_CHARS {
            return Err(format!(
                "Token sub must be 1 to {MAX_USER_ID_CHARS} characters"
            ));
        }
        let user = match claims.name.filter(|n| !n.is_empty()) {
            Some(name) if name.chars().count() > MAX_USER_NAME_CHARS => {
                return Err(format!(
                    "Token name must be at most {MAX_USER_NAME_CHARS} characters"
                ))
            }
            Some(name) => User::Object(Box::new(UserObject {
                id: claims.sub,
                name,
                avatar: None,
                extra: Default::default(),
            })),
            None if sub_len > MAX_USER_NAME_CHARS => {
                return Err(format!(
                    "Token sub must be at most {MAX_USER_NAME_CHARS} characters without a name"
                ))
            }
            None => User::Name(claims.sub),
        };
        Ok(Identity {
            user,
            rooms: claims.rooms,
            expires_at: claims.exp,
        })
    }

    /// How long until a connection with this identity must end (`exp` plus the leeway).
    pub fn remaining(&self, identity: &Identity) -> Option<Duration> {
        let exp = identity.expires_at?;
        // An `exp` too far off to represent never ends the connection.
        let end = UNIX_EPOCH
            .checked_add(Duration::from_secs(exp))?
            .checked_add(self.leeway)?;
        Some(
            end.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO),
        )
    }
}

impl Identity {
    /// Whether the token lets the user into `room`.
    pub fn may_join(&self, room: &str) -> bool {
        match &self.rooms {
            None => true,
            Some(patterns) => patterns.iter().any(|p| glob_match(p, room)),
        }
    }
}

/// `*` matches any run of characters (none included); everything else matches itself. The
/// `rooms` claim's pattern language, defined by the protocol.
pub use herald_protocol::glob::matches as glob_match;

/// Where a request's token came from.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenSource {
    /// `Authorization: Bearer`.
    Header(String),
    /// `?token=`.
    Query(String),
    /// `Sec-WebSocket-Protocol: bearer.<token>`.
    Subprotocol(String),
}

impl TokenSource {
    /// The token itself.
    pub fn token(&self) -> &str {
        match self {
            TokenSource::Header(t) | TokenSource::Query(t) | TokenSource::Subprotocol(t) => t,
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// The offered WebSocket subprotocols, in order.
fn offered_protocols(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
}

/// The token a request carries, if any.
pub fn token_from<B>(req: &Request<B>) -> Option<TokenSource> {
    if let Some(token) = bearer(req.headers()) {
        return Some(TokenSource::Header(token));
    }
    if let Some(query) = req.uri().query() {
        if let Some((_, token)) =
            form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "token")
        {
            return Some(TokenSource::Query(token.into_owned()));
        }
    }
    offered_protocols(req.headers())
        .find_map(|p| p.strip_prefix(BEARER_PROTOCOL_PREFIX))
        .map(|t| TokenSource::Subprotocol(t.to_owned()))
}

/// The subprotocol to name in the 101 answer: `herald` when offered, else the offered
/// `bearer.` one; `None` when neither was offered (the answer then names none, as before).
pub fn chosen_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut bearer = None;
    for p in offered_protocols(headers) {
        if p == APP_PROTOCOL {
            return Some(HeaderValue::from_static(APP_PROTOCOL));
        }
        if bearer.is_none() && p.starts_with(BEARER_PROTOCOL_PREFIX) {
            bearer = HeaderValue::from_str(p).ok();
        }
    }
    bearer
}

/// Constant-time comparison of a presented key with the configured one.
pub fn key_matches(presented: &str, expected: &Secret) -> bool {
    presented
        .as_bytes()
        .ct_eq(expected.expose().as_bytes())
        .into()
}

/// The API key a publish request presents: `Authorization: Bearer <key>` or `X-API-Key`.
pub fn presented_api_key(headers: &HeaderMap) -> Option<String> {
    bearer(headers).or_else(|| {
        headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_owned())
    })
}

/// Whether a request comes straight from this machine: a loopback peer, and no proxy header
/// saying it was forwarded for someone else.
pub fn is_local(peer: SocketAddr, headers: &HeaderMap) -> bool {
    let ip = match peer.ip() {
        IpAddr::V6(v6) => v6.to_canonical(),
        v4 => v4,
    };
    ip.is_loopback()
        && !["forwarded", "x-forwarded-for", "x-real-ip"]
            .iter()
            .any(|h| headers.contains_key(*h))
}

/// The publish endpoints' gate: the API key when one is configured, else loopback only.
pub fn check_publisher(
    config: &Config,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<(), Denied> {
    match &config.api_key {
        Some(expected) => match presented_api_key(headers) {
            Some(key) if key_matches(&key, expected) => Ok(()),
            Some(_) => Err(Denied::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                "Invalid API key",
            )),
            None => Err(Denied::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                "An API key is required (Authorization: Bearer <key> or X-API-Key)",
            )),
        },
        None if is_local(peer, headers) => Ok(()),
        None => Err(Denied::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "Publishing is open to local clients only: configure an API key",
        )),
    }
}

/// Logs how the server is exposed, once at start.
pub fn log_posture(config: &Config, auth: Option<&Auth>) {
    match auth {
        Some(_) => tracing::info!(
            key = if config.jwt_secret.is_some() {
                "shared secret"
            } else {
                "public key"
            },
            "authentication on: clients need a token"
        ),
        None => tracing::info!(
            "authentication off: clients choose their own user (set HERALD_JWT_SECRET or \
             HERALD_JWT_PUBLIC_KEY to require tokens)"
        ),
    }
    if config.api_key.is_none() {
        tracing::warn!(
            "no API key configured: POST /notifications and /updates accept loopback clients \
             only (set HERALD_API_KEY to publish from elsewhere)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn publishers_without_a_key_must_be_local() {
        let config = Config::default();
        let none = HeaderMap::new();
        assert!(check_publisher(&config, addr("127.0.0.1:5000"), &none).is_ok());
        assert!(check_publisher(&config, addr("127.8.9.10:5000"), &none).is_ok());
        assert!(check_publisher(&config, addr("[::1]:5000"), &none).is_ok());
        assert!(check_publisher(&config, addr("[::ffff:127.0.0.1]:5000"), &none).is_ok());
        for remote in [
            "10.0.0.5:5000",
            "192.168.1.2:1",
            "[2001:db8::1]:80",
            "0.0.0.0:1",
        ] {
            let denied = check_publisher(&config, addr(remote), &none).unwrap_err();
            assert_eq!(denied.status, hyper::StatusCode::FORBIDDEN, "{remote}");
            assert_eq!(denied.code, ErrorCode::Forbidden);
        }
        let mut proxied = HeaderMap::new();
        proxied.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        assert!(check_publisher(&config, addr("127.0.0.1:5000"), &proxied).is_err());
    }

    #[test]
    fn publishers_with_a_key_must_present_it_from_anywhere() {
        let config = Config {
            api_key: Some(Secret::new("k3y".into())),
            ..Config::default()
        };
        let mut headers = HeaderMap::new();
        assert!(check_publisher(&config, addr("127.0.0.1:1"), &headers).is_err());
        headers.insert("x-api-key", HeaderValue::from_static("k3y"));
        assert!(check_publisher(&config, addr("10.1.2.3:1"), &headers).is_ok());
        headers.clear();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer k3y"),
        );
        assert!(check_publisher(&config, addr("10.1.2.3:1"), &headers).is_ok());
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer k3"));
        assert!(check_publisher(&config, addr("127.0.0.1:1"), &headers).is_err());
    }

    #[test]
    fn protocol_choice() {
        let mut h = HeaderMap::new();
        assert_eq!(chosen_protocol(&h), None);
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("bearer.abc.def.ghi"),
        );
        assert_eq!(chosen_protocol(&h).unwrap(), "bearer.abc.def.ghi");
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("bearer.abc.def.ghi, herald"),
        );
        assert_eq!(chosen_protocol(&h).unwrap(), "herald");
    }

    #[test]
    fn expiry_far_off_or_past_is_handled() {
        let config = Config {
            jwt_secret: Some(Secret::new("x".repeat(32))),
            jwt_leeway: Duration::ZERO,
            ..Config::default()
        };
        let auth = Auth::from_config(&config).unwrap().unwrap();
        let identity = |exp| Identity {
            user: User::Name("u".into()),
            rooms: None,
            expires_at: exp,
        };
        assert_eq!(auth.remaining(&identity(None)), None);
        assert_eq!(auth.remaining(&identity(Some(1))), Some(Duration::ZERO));
        assert_eq!(auth.remaining(&identity(Some(u64::MAX))), None);
        let soon = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 100;
        let left = auth.remaining(&identity(Some(soon))).unwrap();
        assert!(left > Duration::from_secs(98) && left <= Duration::from_secs(100));
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let config = Config {
            api_key: Some(Secret::new("hunter2".into())),
            jwt_secret: Some(Secret::new("sesame".into())),
            ..Config::default()
        };
        let text = format!("{config:?}");
        assert!(!text.contains("hunter2") && !text.contains("sesame"));
    }
}
