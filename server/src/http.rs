//! HTTP routing: the WebSocket upgrade, the SSE stream, the publish endpoints, health, metrics,
//! the demo page, and CORS for all of them.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use herald_protocol::{
    ErrorCode, ErrorResponse, NotifyRequest, NotifyResponse, UpdateRequest, UpdateResponse,
};
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::LazyLock;
use tokio_util::sync::CancellationToken;

use crate::auth::Denied;
use crate::inbound::first_violation;
use crate::node::Node;
use crate::transport::{polling, sse, websocket};

mod streams;

/// Every response body.
pub use crate::transport::Body;

/// One accepted TCP connection as its requests see it: whether it has become a session (a
/// WebSocket or an SSE stream), whether a request is being served, and the switch that drops it.
/// The accept loop counts connections that are not sessions yet against
/// `max_unadmitted_connections` and closes them when idle past `keep_alive_timeout`.
pub struct Conn {
    /// Connections of the node accepted and not admitted, this one included until it is.
    unadmitted: Arc<AtomicUsize>,
    admitted: AtomicBool,
    in_flight: AtomicUsize,
    /// When the last request finished (ms since `born`).
    idle_since_ms: AtomicU64,
    born: std::time::Instant,
    /// Cancelled to drop the connection at once, abortively (an SSE stream whose client stopped
    /// reading: hyper then no longer polls its body, so the stream cannot end itself).
    pub kill: CancellationToken,
    /// Cancelled by the accept loop once the connection has ended.
    pub closed: CancellationToken,
}

impl Conn {
    /// A newly accepted connection, counted in `unadmitted` until it is admitted or ends.
    pub fn new(unadmitted: Arc<AtomicUsize>) -> Arc<Conn> {
        unadmitted.fetch_add(1, Ordering::AcqRel);
        Arc::new(Conn {
            unadmitted,
            admitted: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            born: std::time::Instant::now(),
            kill: CancellationToken::new(),
            closed: CancellationToken::new(),
        })
    }

    /// The connection became a session: it no longer counts as unadmitted and the keep-alive
    /// timeout no longer applies (the session has its own liveness checks).
    pub fn admit(&self) {
        if !self.admitted.swap(true, Ordering::AcqRel) {
            self.unadmitted.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Whether it became a session.
    pub fn is_admitted(&self) -> bool {
        self.admitted.load(Ordering::Acquire)
    }

    /// How long it has had no request in progress; `None` while one is.
    pub fn idle_for(&self) -> Option<std::time::Duration> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = std::time::Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
        Some(self.born.elapsed().saturating_sub(since))
    }

    /// A request of an admitted session (a held poll) is in progress on this connection: until
    /// the returned guard is dropped, the connection does not count as unadmitted.
    pub fn lend_admission(self: &Arc<Self>) -> Option<LentAdmission> {
        if self.admitted.load(Ordering::Acquire) {
            return None;
        }
        self.unadmitted.fetch_sub(1, Ordering::AcqRel);
        Some(LentAdmission(self.clone()))
    }

    fn start_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if !self.admitted.load(Ordering::Acquire) {
            self.unadmitted.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// A connection counted as admitted for one request ([`Conn::lend_admission`]).
pub struct LentAdmission(Arc<Conn>);

impl Drop for LentAdmission {
    fn drop(&mut self) {
        // Requests on one connection run one after the other, so the connection cannot have
        // been admitted for good meanwhile.
        self.0.unadmitted.fetch_add(1, Ordering::AcqRel);
    }
}

/// A request in progress on a [`Conn`]; its end restarts the connection's idle clock.
struct InFlight(Arc<Conn>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let conn = &self.0;
        let now = conn.born.elapsed().as_millis() as u64;
        conn.idle_since_ms.store(now, Ordering::Release);
        conn.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

static INDEX_HTML: &str = include_str!("demo/index.html");
static APP_JS: &str = include_str!("demo/app.js");
static STYLE_CSS: &str = include_str!("demo/style.css");

struct BodyValidators {
    notify: jsonschema::Validator,
    update: jsonschema::Validator,
}

static VALIDATORS: LazyLock<BodyValidators> = LazyLock::new(|| {
    let compile = |name: &str| {
        let schema = herald_protocol::schema(name).expect("schema exists");
        jsonschema::validator_for(schema.as_value()).expect("the generated schema compiles")
    };
    BodyValidators {
        notify: compile("notify-request"),
        update: compile("update-request"),
    }
});

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

fn json<T: Serialize>(status: StatusCode, body: &T) -> Response<Body> {
    let bytes = serde_json::to_vec(body).expect("response bodies always serialise");
    let mut response = Response::new(full(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn error(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Response<Body> {
    json(status, &ErrorResponse::new(code, message))
}

fn denied(d: Denied) -> Response<Body> {
    error(d.status, d.code, d.message)
}

fn asset(content_type: &'static str, body: &'static str) -> Response<Body> {
    let mut response = Response::new(full(Bytes::from_static(body.as_bytes())));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Lets a page read the response: the request's origin is echoed back when it is allowed (any
/// origin is, without an allowlist); a refused origin gets no CORS headers at all. What only a
/// preflight (`OPTIONS`) reads, the allowed headers and methods and how long to cache them, goes
/// on preflight answers only: a browser ignores it anywhere else, and it was three of the seven
/// headers of every poll's answer.
fn cors(node: &Node, origin: Option<HeaderValue>, preflight: bool, response: &mut Response<Body>) {
    let allow = match origin {
        Some(origin) if !node.limits.origin_allowed(&origin) => return,
        Some(origin) => origin,
        None => HeaderValue::from_static("*"),
    };
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    if !preflight {
        return;
    }
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(
            "Content-Type, Authorization, X-API-Key, Cache-Control, Last-Event-ID",
        ),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, DELETE, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
}

fn query_param(req: &Request<Incoming>, name: &str) -> Option<String> {
    let query = req.uri().query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Routes one request.
pub async fn route(
    node: Arc<Node>,
    mut req: Request<Incoming>,
    peer: SocketAddr,
    conn: Arc<Conn>,
) -> Result<Response<Body>, Infallible> {
    let _in_flight = conn.start_request();
    let path = req.uri().path().to_owned();
    // A copy, not a clone: a clone would keep the whole request head (and hyper's read buffer
    // it sits in) alive until the response is ready.
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| HeaderValue::from_bytes(o.as_bytes()).ok());
    let preflight = req.method() == Method::OPTIONS;
    if matches!(path.as_str(), "/" | "/ws") && hyper_tungstenite::is_upgrade_request(&req) {
        // Origin, attempt rate, token and capacity are checked before the upgrade.
        let admission = match crate::admission::admit(&node, &req, peer, None) {
            Ok(admission) => admission,
            Err(d) => return Ok(denied(d)),
        };
        let protocol = crate::auth::chosen_protocol(req.headers());
        return Ok(match websocket::accept(&mut req) {
            Ok((mut response, upgrade)) => {
                if let Some(protocol) = protocol {
                    response
                        .headers_mut()
                        .insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
                }
                conn.admit();
                tokio::spawn(websocket::serve(node, upgrade, admission));
                response
            }
            Err(why) => error(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidRequest,
                format!("Bad WebSocket upgrade: {why}"),
            ),
        });
    }
    let mut response = match (req.method(), path.as_str()) {
        (&Method::OPTIONS, _) => {
            let mut r = Response::new(full(Bytes::new()));
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
        (&Method::GET, "/") | (&Method::GET, "/index.html") => {
            asset("text/html; charset=utf-8", INDEX_HTML)
        }
        (&Method::GET, "/app.js") => asset("text/javascript; charset=utf-8", APP_JS),
        (&Method::GET, "/style.css") => asset("text/css; charset=utf-8", STYLE_CSS),
        (&Method::GET, "/dashboard.js") => asset(
            "text/javascript; charset=utf-8",
            include_str!("demo/dashboard.js"),
        ),
        (&Method::GET, "/vendor/uPlot.iife.min.js") => asset(
            "text/javascript; charset=utf-8",
            include_str!("demo/vendor/uPlot.iife.min.js"),
        ),
        (&Method::GET, "/vendor/uPlot.min.css") => asset(
            "text/css; charset=utf-8",
            include_str!("demo/vendor/uPlot.min.css"),
        ),
        (&Method::GET, "/herald-client.js") => asset(
            "text/javascript; charset=utf-8",
            include_str!("demo/herald-client.js"),
        ),
        (&Method::GET, "/ws") => error(
            StatusCode::UPGRADE_REQUIRED,
            ErrorCode::InvalidRequest,
            "This endpoint speaks WebSocket: send an upgrade request",
        ),
        (&Method::GET, "/events")
            if req.uri().query().is_some_and(|q| {
                form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "stream")
            }) =>
        {
            streams::events_synced(&node, &req, peer, &conn).await
        }
        (&Method::GET, "/events") => events(&node, &req, peer, &conn),
        (&Method::GET, "/streams") => streams::list(&node),
        (&Method::GET, p) if p.starts_with("/streams/") && !p[9..].contains('/') => {
            streams::info(&node, &p[9..])
        }
        (&Method::POST, "/streams") => streams::create(&node, req, peer).await,
        (&Method::POST, p) if streams::points_path(p).is_some() => {
            let id = streams::points_path(p).unwrap_or_default().to_owned();
            streams::points(&node, req, peer, &id).await
        }
        (&Method::POST, "/notifications") => match publisher(&node, &req, peer) {
            Ok(()) => notifications(&node, req).await,
            Err(d) => denied(d),
        },
        (&Method::POST, "/updates") => match publisher(&node, &req, peer) {
            Ok(()) => updates(&node, req).await,
            Err(d) => denied(d),
        },
        (&Method::GET, "/turn-credentials") => turn_credentials(&node, &req, peer),
        (_, p) if node.config.long_polling && (p == "/poll" || p.starts_with("/poll/")) => {
            polling::route(&node, req, peer, || conn.lend_admission()).await
        }
        (&Method::GET, "/healthz") => json(StatusCode::OK, &health(&node)),
        (&Method::GET, "/metrics") => {
            let mut r = Response::new(full(node.render_metrics()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        (
            _,
            "/" | "/ws" | "/events" | "/notifications" | "/updates" | "/healthz" | "/metrics"
            | "/turn-credentials" | "/streams",
        ) => error(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::MethodNotAllowed,
            "Method not allowed",
        ),
        _ => error(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("No such path: {path}"),
        ),
    };
    cors(&node, origin, preflight, &mut response);
    Ok(response)
}

/// `GET /turn-credentials` (capability `signaling`): TURN credentials for one user. With
/// authentication on, for the token's user (a token is required, as for a connection); without
/// it, for `?userId=`, to callers that pass the publish gate (the API key, or a trusted
/// loopback client): a backend fetches them for its users. `404` when no TURN secret is
/// configured.
fn turn_credentials(node: &Node, req: &Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    if node.config.turn_secret.is_none() {
        return error(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "TURN credentials are not configured here (no turn_secret)",
        );
    }
    let user = match &node.auth {
        Some(auth) => {
            let Some(source) = crate::auth::token_from(req) else {
                return error(
                    StatusCode::UNAUTHORIZED,
                    ErrorCode::Unauthorized,
                    "A token is required: Authorization: Bearer <token> or ?token=",
                );
            };
            match auth.verify(source.token()) {
                Ok(identity) => identity.user.id().to_owned(),
                Err(message) => {
                    return error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
                }
            }
        }
        None => {
            if let Err(d) = publisher(node, req, peer) {
                return denied(d);
            }
            let max = herald_protocol::limits::MAX_USER_ID_CHARS as usize;
            match query_param(req, "userId") {
                Some(id) if !id.is_empty() && id.chars().count() <= max => id,
                _ => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        ErrorCode::InvalidRequest,
                        format!(
                            "userId (1 to {max} characters) names the user the credentials are for"
                        ),
                    )
                }
            }
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match crate::capability::signaling::turn_credentials(&node.config, &user, now) {
        Some(credentials) => {
            let mut response = json(StatusCode::OK, &credentials);
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        None => error(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "TURN credentials are not configured here (no turn_secret)",
        ),
    }
}

/// `/healthz`: `ok`, or `degraded` while a cluster node cannot reach its broker (it still
/// serves its own connections).
fn health(node: &Node) -> serde_json::Value {
    use crate::broker::Health;
    let (status, broker) = match node.broker.health() {
        Health::Standalone => ("ok", "memory"),
        Health::Up => ("ok", "up"),
        Health::Degraded => ("degraded", "down"),
    };
    serde_json::json!({
        "status": status,
        "broker": broker,
        "connections": node.hub.session_count(),
        "rooms": node.hub.room_count(),
    })
}

/// The publish endpoints' gate: no cross-site origin, and the API key or a trusted loopback
/// client.
fn publisher(node: &Node, req: &Request<Incoming>, peer: SocketAddr) -> Result<(), Denied> {
    let headers = req.headers();
    if let Some(origin) = headers.get(header::ORIGIN) {
        publish_origin(node, origin, headers.get(header::HOST))?;
    }
    if node.config.api_key.is_none() && !loopback_trusted(&node.config) {
        return Err(Denied::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "Publishing needs an API key here (Authorization: Bearer <key> or X-API-Key): \
             loopback clients are trusted only on a loopback-only listen address without a proxy",
        ));
    }
    crate::auth::check_publisher(&node.config, peer, headers)
}

/// Whether loopback clients may publish without an API key: when asked for, or when nothing
/// but this machine can reach the server (a loopback listen address and no proxy in front; a
/// proxy on the same host makes every request look local).
pub fn loopback_trusted(config: &crate::Config) -> bool {
    config.trust_loopback_publish || (config.listen.ip().is_loopback() && !config.behind_proxy)
}

/// A browser names the page's origin on every cross-site POST, and a page on any site may send
/// one to a local server, so the publish endpoints take only the server's own origin (the
/// `Origin` whose host and port are the `Host` header) or one the allowlist names. Requests
/// without `Origin` come from programs, not pages, and pass.
fn publish_origin(
    node: &Node,
    origin: &HeaderValue,
    host: Option<&HeaderValue>,
) -> Result<(), Denied> {
    let same_origin = match (origin.to_str(), host.and_then(|h| h.to_str().ok())) {
        (Ok(origin), Some(host)) => same_authority(origin, host),
        _ => false,
    };
    let listed = !node.config.allowed_origins.is_empty() && node.limits.origin_allowed(origin);
    if same_origin || listed {
        return Ok(());
    }
    Err(Denied::new(
        StatusCode::FORBIDDEN,
        ErrorCode::OriginNotAllowed,
        format!(
            "Origin {} may not publish: only this server's own origin and the configured \
             allowed origins may",
            origin.to_str().unwrap_or("(not text)")
        ),
    ))
}

/// Whether an `Origin` (`scheme://host[:port]`) names the same host and port as a `Host`
/// header (`host[:port]`), the scheme's default port standing in for a missing one.
fn same_authority(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.trim().split_once("://") else {
        return false;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => "80",
        "https" => "443",
        _ => return false,
    };
    let with_port = |a: &str| -> String {
        let a = a.trim().trim_end_matches('/').to_ascii_lowercase();
        // An IPv6 literal is bracketed; a port follows the last colon outside the brackets.
        let has_port = match a.rfind(']') {
            Some(end) => a[end..].contains(':'),
            None => a.contains(':'),
        };
        if has_port {
            a
        } else {
            format!("{a}:{default_port}")
        }
    };
    !authority.is_empty() && with_port(authority) == with_port(host)
}

fn events(
    node: &Arc<Node>,
    req: &Request<Incoming>,
    peer: SocketAddr,
    conn: &Conn,
) -> Response<Body> {
    // With authentication on the stream belongs to the token's user; `?userId=` is ignored.
    let user = query_param(req, "userId")
        .filter(|id| !id.is_empty() && node.auth.is_none())
        .map(herald_protocol::User::Name);
    let claimed = user.as_ref().map(|u| u.id().to_owned());
    let admission = match crate::admission::admit(node, req, peer, claimed.as_deref()) {
        Ok(admission) => admission,
        Err(d) => return denied(d),
    };
    // A reconnecting EventSource sends the last id it saw; `?lastEventId=` serves clients that
    // cannot set headers.
    let last_event_id = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| query_param(req, "lastEventId"))
        .and_then(|v| v.trim().parse::<u64>().ok());
    conn.admit();
    let switch = sse::ConnSwitch {
        kill: conn.kill.clone(),
        closed: conn.closed.clone(),
    };
    let stream = sse::open(node.clone(), user, admission, last_event_id, switch);
    let mut response = Response::new(StreamBody::new(stream).boxed());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    // The connection ends with the stream: nothing else is sent on it, and the watcher that
    // resets a stuck stream (see `sse`) waits for the connection, not just the body, to end.
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Reads a JSON body within the size limit and checks it against the schema.
async fn read_body<T: DeserializeOwned>(
    node: &Node,
    req: Request<Incoming>,
    validator: &jsonschema::Validator,
) -> Result<T, Response<Body>> {
    // Required: without it (or with a form or text type) a page on any site could post here
    // without a CORS preflight.
    let essence = req
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|ct| {
            let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
            ct.split(';').next().unwrap_or("").trim().to_owned()
        })
        .unwrap_or_default();
    if essence != "application/json" && !essence.ends_with("+json") {
        let got = if essence.is_empty() {
            "none".to_owned()
        } else {
            essence
        };
        return Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            format!("Expected Content-Type application/json, got {got}"),
        ));
    }
    let limit = node.config.max_frame_bytes;
    let bytes = match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                format!("Body larger than {limit} bytes"),
            ))
        }
        Err(e) => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidJson,
                format!("Could not read the body: {e}"),
            ))
        }
    };
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidJson,
            format!("Body is not valid JSON: {e}"),
        )
    })?;
    if let Some(fault) = first_violation(validator, &value) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            format!("Body does not match the schema at {fault}"),
        ));
    }
    serde_json::from_value(value).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            format!("Invalid body: {e}"),
        )
    })
}

async fn notifications(node: &Arc<Node>, req: Request<Incoming>) -> Response<Body> {
    match read_body::<NotifyRequest>(node, req, &VALIDATORS.notify).await {
        Ok(request) => {
            let notification = crate::capability::notify::notify(node, request);
            node.settled().await;
            json(
                StatusCode::OK,
                &NotifyResponse {
                    success: true,
                    notification_id: notification.id,
                },
            )
        }
        Err(response) => response,
    }
}

async fn updates(node: &Arc<Node>, req: Request<Incoming>) -> Response<Body> {
    match read_body::<UpdateRequest>(node, req, &VALIDATORS.update).await {
        Ok(request) => {
            crate::capability::notify::update(node, request);
            node.settled().await;
            json(StatusCode::OK, &UpdateResponse { success: true })
        }
        Err(response) => response,
    }
}

#[cfg(test)]
mod tests {
    use super::same_authority;

    #[test]
    fn origins_match_the_host_by_host_and_port() {
        assert!(same_authority("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(same_authority("https://Example.COM", "example.com"));
        assert!(same_authority("https://example.com", "example.com:443"));
        assert!(same_authority("http://[::1]:9000", "[::1]:9000"));
        assert!(same_authority("http://[::1]", "[::1]:80"));
        assert!(!same_authority("http://127.0.0.1:8081", "127.0.0.1:8080"));
        assert!(!same_authority("https://example.com", "example.com:80"));
        assert!(!same_authority("http://evil.test", "example.com"));
        assert!(!same_authority("null", "example.com"));
        assert!(!same_authority("http://", ":80"));
    }
}
