//! The HTTP side of data streams (capability `streams`):
//! - `GET /streams`: every stream's declaration;
//! - `POST /streams`: declare a stream ([`StreamSpec`]), behind the publish gate;
//! - `POST /streams/{id}/points`: one point or a batch ([`PointsRequest`]), behind the publish
//!   gate (the API key, as for notifications);
//! - `GET /events?stream=ID` (repeatable): an SSE stream subscribed to those streams, with
//!   `maxPoints`, `maxRate` and `since=ID:EPOCH:OFFSET` (repeatable) as in `stream_subscribe`;
//!   frames arrive as `stream_subscribed`, `stream_point` and `stream_window` events whose data
//!   is the same JSON the WebSocket frame carries.

use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};

use herald_protocol::stream::{PointsRequest, PointsResponse, StreamCreated, StreamId, StreamSpec};
use herald_protocol::{ErrorCode, StreamPosition};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};

use super::{denied, error, json, publisher, read_body, Body, Conn};
use crate::capability::streams::{Acked, Refused, Streams};
use crate::node::Node;
use crate::transport::sse;

struct Validators {
    spec: jsonschema::Validator,
    points: jsonschema::Validator,
}

static VALIDATORS: LazyLock<Validators> = LazyLock::new(|| {
    let compile = |name: &str| {
        let schema = herald_protocol::schema(name).expect("schema exists");
        jsonschema::validator_for(schema.as_value()).expect("the generated schema compiles")
    };
    Validators {
        spec: compile("stream-spec"),
        points: compile("points-request"),
    }
});

fn capability(node: &Node) -> Result<&Streams, Box<Response<Body>>> {
    node.capability::<Streams>().ok_or_else(|| {
        Box::new(error(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "This server does not run data streams",
        ))
    })
}

fn refused(r: Refused) -> Response<Body> {
    let status = match r.code {
        ErrorCode::StreamNotFound => StatusCode::NOT_FOUND,
        ErrorCode::StreamConflict => StatusCode::CONFLICT,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        _ => StatusCode::BAD_REQUEST,
    };
    error(status, r.code, r.message)
}

/// How long a request waits for its data to come back through the broker.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(5);

/// Waits until the request's data has been applied on this node (so the cluster has it in
/// order): the outcome, or `503` when the broker did not bring it back in time (it may still
/// apply).
async fn settle(streams: &Streams, acked: Acked) -> Result<bool, Box<Response<Body>>> {
    let mut acked = acked;
    match tokio::time::timeout(SETTLE, &mut acked).await {
        Ok(Ok(Ok(outcome))) => Ok(outcome),
        Ok(Ok(Err(r))) => Err(Box::new(refused(r))),
        Ok(Err(_)) | Err(_) => {
            streams.abandon(acked);
            Err(Box::new(error(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Overloaded,
                "The cluster broker did not confirm the request in time; it may still apply",
            )))
        }
    }
}

/// The stream id of a `/streams/{id}/points` path.
pub fn points_path(path: &str) -> Option<&str> {
    path.strip_prefix("/streams/")?.strip_suffix("/points")
}

/// `GET /streams`.
pub fn list(node: &Node) -> Response<Body> {
    match capability(node) {
        Ok(streams) => json(StatusCode::OK, &streams.specs(node)),
        Err(response) => *response,
    }
}

/// `GET /streams/{id}`.
pub fn info(node: &Node, id: &str) -> Response<Body> {
    let streams = match capability(node) {
        Ok(s) => s,
        Err(response) => return *response,
    };
    let id = StreamId(id.to_owned());
    match streams.info(node, &id) {
        Some(info) => json(StatusCode::OK, &info),
        None => refused(Refused {
            code: ErrorCode::StreamNotFound,
            message: format!("No stream {id}"),
        }),
    }
}

/// `POST /streams`.
pub async fn create(node: &Arc<Node>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    if let Err(d) = publisher(node, &req, peer) {
        return denied(d);
    }
    let streams = match capability(node) {
        Ok(s) => s,
        Err(response) => return *response,
    };
    let spec = match read_body::<StreamSpec>(node, req, &VALIDATORS.spec).await {
        Ok(spec) => spec,
        Err(response) => return response,
    };
    let id = spec.id.clone();
    let acked = match streams.create(node, spec) {
        Ok(acked) => acked,
        Err(r) => return refused(r),
    };
    match settle(streams, acked).await {
        Ok(created) => json(
            if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            },
            &StreamCreated {
                success: true,
                id,
                created,
            },
        ),
        Err(response) => *response,
    }
}

/// `POST /streams/{id}/points`.
pub async fn points(
    node: &Arc<Node>,
    req: Request<Incoming>,
    peer: SocketAddr,
    id: &str,
) -> Response<Body> {
    if let Err(d) = publisher(node, &req, peer) {
        return denied(d);
    }
    let streams = match capability(node) {
        Ok(s) => s,
        Err(response) => return *response,
    };
    let id = StreamId(id.to_owned());
    if !streams.exists_synced(node, &id).await {
        return refused(Refused {
            code: ErrorCode::StreamNotFound,
            message: format!("No stream {id}"),
        });
    }
    let request = match read_body::<PointsRequest>(node, req, &VALIDATORS.points).await {
        Ok(request) => request,
        Err(response) => return response,
    };
    let (accepted, acked) = match streams.publish_acked(node, &id, request.into_points()) {
        Ok(x) => x,
        Err(r) => return refused(r),
    };
    match settle(streams, acked).await {
        Ok(_) => json(
            StatusCode::OK,
            &PointsResponse {
                success: true,
                accepted: accepted as u64,
            },
        ),
        Err(response) => *response,
    }
}

/// What an SSE request subscribes to.
struct SseSubscription {
    streams: Vec<(StreamId, Option<StreamPosition>)>,
    max_points: Option<u32>,
    max_rate: Option<f64>,
}

fn bad(message: String) -> Refused {
    Refused {
        code: ErrorCode::InvalidRequest,
        message,
    }
}

fn parse_query(node: &Node, streams: &Streams, query: &str) -> Result<SseSubscription, Refused> {
    let mut out = SseSubscription {
        streams: Vec::new(),
        max_points: None,
        max_rate: None,
    };
    let mut since = Vec::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "stream" => {
                let id = StreamId(value.into_owned());
                if !streams.exists(node, &id) {
                    return Err(Refused {
                        code: ErrorCode::StreamNotFound,
                        message: format!("No stream {id}"),
                    });
                }
                if !out.streams.iter().any(|(s, _)| *s == id) {
                    out.streams.push((id, None));
                }
            }
            "maxPoints" => {
                let n = value
                    .parse::<u32>()
                    .ok()
                    .filter(|&n| u64::from(n) <= herald_protocol::limits::MAX_SNAPSHOT_POINTS);
                out.max_points = Some(n.ok_or_else(|| {
                    bad(format!(
                        "maxPoints must be a whole number up to {}",
                        herald_protocol::limits::MAX_SNAPSHOT_POINTS
                    ))
                })?);
            }
            "maxRate" => {
                let max = herald_protocol::limits::MAX_STREAM_RATE;
                let rate = value
                    .parse::<f64>()
                    .ok()
                    .filter(|r| r.is_finite() && *r >= 0.01 && *r <= max);
                out.max_rate =
                    Some(rate.ok_or_else(|| {
                        bad(format!("maxRate must be a number from 0.01 to {max}"))
                    })?);
            }
            "since" => {
                let mut parts = value.rsplitn(3, ':');
                let offset = parts.next().and_then(|o| o.parse::<u64>().ok());
                let epoch = parts.next().filter(|e| !e.is_empty() && e.len() <= 64);
                let id = parts.next();
                match (id, epoch, offset) {
                    (Some(id), Some(epoch), Some(offset)) => since.push((
                        StreamId(id.to_owned()),
                        StreamPosition {
                            offset,
                            epoch: epoch.to_owned(),
                        },
                    )),
                    _ => return Err(bad("since must be STREAM:EPOCH:OFFSET".to_owned())),
                }
            }
            _ => {}
        }
    }
    let limit = herald_protocol::limits::MAX_STREAM_SUBSCRIPTIONS;
    if out.streams.len() > limit {
        return Err(bad(format!("At most {limit} streams per connection")));
    }
    for (id, position) in since {
        match out.streams.iter_mut().find(|(s, _)| *s == id) {
            Some(entry) => entry.1 = Some(position),
            None => return Err(bad(format!("since names {id}, which no stream= names"))),
        }
    }
    Ok(out)
}

/// [`events`], once this node has every stream declaration the cluster ordered before the
/// request (a stream another node has just declared is found here too).
pub async fn events_synced(
    node: &Arc<Node>,
    req: &Request<Incoming>,
    peer: SocketAddr,
    conn: &Conn,
) -> Response<Body> {
    if let Ok(streams) = capability(node) {
        let query = req.uri().query().unwrap_or("");
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            if key == "stream"
                && !streams
                    .exists_synced(node, &StreamId(value.into_owned()))
                    .await
            {
                break;
            }
        }
    }
    events(node, req, peer, conn)
}

/// `GET /events?stream=...`: an SSE stream (as `GET /events`, with the same admission, user
/// and `Last-Event-ID` handling) subscribed to data streams.
pub fn events(
    node: &Arc<Node>,
    req: &Request<Incoming>,
    peer: SocketAddr,
    conn: &Conn,
) -> Response<Body> {
    let streams = match capability(node) {
        Ok(s) => s,
        Err(response) => return *response,
    };
    let subscription = match parse_query(node, streams, req.uri().query().unwrap_or("")) {
        Ok(s) => s,
        Err(r) => return refused(r),
    };
    let user = super::query_param(req, "userId")
        .filter(|id| !id.is_empty() && node.auth.is_none())
        .map(herald_protocol::User::Name);
    let claimed = user.as_ref().map(|u| u.id().to_owned());
    let admission = match crate::admission::admit(node, req, peer, claimed.as_deref()) {
        Ok(admission) => admission,
        Err(d) => return denied(d),
    };
    if let Some(identity) = &admission.identity {
        // The token's `rooms` claim grants streams as `stream:<id>` (as for `stream_subscribe`).
        if let Some((id, _)) = subscription
            .streams
            .iter()
            .find(|(id, _)| !identity.may_join(&format!("stream:{id}")))
        {
            let text = format!("You may not subscribe to stream {id}");
            return refused(Refused {
                code: ErrorCode::Forbidden,
                message: text,
            });
        }
    }
    let last_event_id = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| super::query_param(req, "lastEventId"))
        .and_then(|v| v.trim().parse::<u64>().ok());
    conn.admit();
    let switch = sse::ConnSwitch {
        kill: conn.kill.clone(),
        closed: conn.closed.clone(),
    };
    let for_open = node.clone();
    let stream = sse::open_with(
        node.clone(),
        user,
        admission,
        last_event_id,
        switch,
        move |session| {
            let Some(streams) = for_open.capability::<Streams>() else {
                return;
            };
            for (id, since) in subscription.streams {
                let outcome = streams.subscribe(
                    &for_open,
                    session,
                    &id,
                    subscription.max_points,
                    since,
                    subscription.max_rate,
                );
                if let Err(r) = outcome {
                    tracing::debug!(stream = %id, message = %r.message, "sse subscription refused");
                }
            }
        },
    );
    let mut response = Response::new(http_body_util::StreamBody::new(stream).boxed());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use super::points_path;

    #[test]
    fn points_paths_name_their_stream() {
        assert_eq!(points_path("/streams/cpu/points"), Some("cpu"));
        assert_eq!(points_path("/streams/points"), None);
        assert_eq!(points_path("/streams/a/b"), None);
    }
}
