//! Admission: whether a WebSocket upgrade or an SSE request becomes a connection (origin,
//! connect rate, token, connection caps; see [`crate::limits`] for the order), and the tie
//! between an admitted connection and its session (identity, token expiry). Layer 6.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use herald_protocol::{ErrorCode, User};
use hyper::header;
use hyper::{Request, StatusCode};

use crate::auth::{Denied, Identity};
use crate::limits::Permit;
use crate::node::Node;
use crate::session::{CloseReason, Session};

/// A request that passed every check: the connection's identity and its permit. Held by the
/// transport for as long as the connection lives.
pub struct Admission {
    /// The token's identity, when authentication is on.
    pub identity: Option<Arc<Identity>>,
    permit: Permit,
}

/// Runs the checks listed in [`crate::limits`] on a WebSocket upgrade or SSE request. `claimed_user` is the SSE
/// stream's `?userId=` (ignored when authentication is on).
pub fn admit<B>(
    node: &Node,
    req: &Request<B>,
    peer: SocketAddr,
    claimed_user: Option<&str>,
) -> Result<Admission, Denied> {
    let limits = &node.limits;
    limits.check_origin(req.headers().get(header::ORIGIN))?;
    limits.check_connect_rate(peer)?;
    let identity = match &node.auth {
        None => None,
        Some(auth) => {
            let Some(source) = crate::auth::token_from(req) else {
                return Err(Denied::new(
                    StatusCode::UNAUTHORIZED,
                    ErrorCode::Unauthorized,
                    "A token is required: Authorization: Bearer <token>, ?token=, or the \
                     bearer.<token> WebSocket subprotocol",
                ));
            };
            let identity = auth.verify(source.token()).map_err(|message| {
                Denied::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
            })?;
            Some(Arc::new(identity))
        }
    };
    let user = match &identity {
        Some(identity) => Some(identity.user.id()),
        None => {
            // Without a token, a stream's claimed user is checked against those connected.
            if let (Some(user), max) = (claimed_user, limits.max_per_user) {
                if max > 0 && node.hub.user_sessions(user).len() >= max {
                    return Err(Denied::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        ErrorCode::RateLimited,
                        format!("User {user} already has {max} connections"),
                    ));
                }
            }
            None
        }
    };
    let permit = limits.reserve(user)?;
    Ok(Admission { identity, permit })
}

impl Admission {
    /// Ties the open session to the token: its identity, and the end of the connection when
    /// the token expires.
    pub fn attach(&mut self, node: &Arc<Node>, session: &Arc<Session>) {
        let Some(identity) = &self.identity else {
            return;
        };
        let _ = session.identity.set(identity.clone());
        node.identify(session, identity.user.clone());
        let remaining = node.auth.as_ref().and_then(|auth| auth.remaining(identity));
        if let Some(remaining) = remaining {
            let weak: Weak<Session> = Arc::downgrade(session);
            let task = tokio::spawn(async move {
                tokio::time::sleep(remaining).await;
                if let Some(session) = weak.upgrade() {
                    tracing::debug!(client = %session.id, "token expired");
                    session.close(CloseReason::TokenExpired);
                }
            });
            self.permit.abort_on_drop(task.abort_handle());
        }
    }

    /// The user the stream or socket speaks as from the start, if the token names one.
    pub fn user(&self) -> Option<&User> {
        self.identity.as_ref().map(|i| &i.user)
    }
}

/// Answers a frame dropped by the message bucket.
pub fn refuse_rate_limited(node: &Node, session: &Session) {
    node.refuse_frame(
        session,
        ErrorCode::RateLimited,
        "Too many messages: slow down",
    );
}
