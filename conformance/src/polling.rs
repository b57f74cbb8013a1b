//! The polling actor: a WebSocket actor's frames carried over long polling (capability
//! `long-polling`, PROTOCOL.md section 10) instead of a WebSocket. With
//! [`crate::Options::polling`] the runner opens every `ws` actor this way, and runs only the
//! sessions that [`fits`]: the ones whose steps mean the same on both transports.

use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use crate::session::{Action, ActorKind, Disconnect, Session};

/// What the polling reader delivers.
#[derive(Debug)]
pub enum PollEvent {
    /// A server frame.
    Frame(Value),
    /// The server ended the session (the WebSocket close code and reason it reports).
    Closed(u16, String),
    /// A request failed: the session is gone for the runner.
    Ended(String),
}

/// Whether a session means the same over polling: its WebSocket actors connect to `/ws` or `/`
/// without headers, and use no step that only a WebSocket has (close frames and codes, raw or
/// oversized frames, an abrupt disconnect, whose `user_left` polling gives only after its idle
/// timeout).
pub fn fits(session: &Session) -> bool {
    let ws = |actor: &Option<String>| {
        actor
            .as_ref()
            .and_then(|a| session.header.actors.get(a))
            .is_some_and(|k| *k == ActorKind::Ws)
    };
    let mut any_ws = false;
    for step in &session.steps {
        if !ws(&step.actor) {
            continue;
        }
        any_ws = true;
        match &step.action {
            Action::Connect(c)
                if !matches!(c.path.as_str(), "/ws" | "/") || !c.headers.is_empty() =>
            {
                return false
            }
            Action::SendRaw(_) | Action::ExpectClose(_) => return false,
            Action::Disconnect(Disconnect::Abrupt) => return false,
            _ => {}
        }
    }
    any_ws
}

/// One polling session's sending side.
pub struct PollSink {
    http: reqwest::Client,
    url: String,
    seq: u64,
}

impl PollSink {
    /// Sends one frame (a JSON value) as the next numbered send.
    pub async fn send(&mut self, frame: Value) -> Result<(), String> {
        self.seq += 1;
        let body = json!({"seq": self.seq, "frames": [frame]});
        let response = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| format!("POST {} failed: {e}", self.url))?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        if status != 200 {
            return Err(format!("POST {} answered {status}: {text}", self.url));
        }
        Ok(())
    }

    /// Ends the session (`DELETE`).
    pub async fn close(&mut self) {
        let _ = self.http.delete(&self.url).send().await;
    }
}

/// Opens a polling session at `base` (the server's URL): its sink, and the reader task that
/// polls and hands over every frame, in order, through `tx`; `check` sees each frame first (the
/// schema check).
pub async fn connect<T: From<PollEvent> + Send + 'static>(
    http: &reqwest::Client,
    base: &str,
    tx: UnboundedSender<T>,
    check: impl Fn(&Value) + Send + 'static,
) -> Result<(PollSink, JoinHandle<()>), String> {
    let open = format!("{base}/poll");
    let response = http
        .post(&open)
        .send()
        .await
        .map_err(|e| format!("POST {open} failed: {e}"))?;
    let status = response.status().as_u16();
    let text = response
        .text()
        .await
        .map_err(|e| format!("POST {open}: reading the answer failed: {e}"))?;
    let opened: Value = serde_json::from_str(&text)
        .map_err(|e| format!("POST {open}: the answer is not JSON: {e}: {text}"))?;
    if status != 200 {
        return Err(format!("POST {open} answered {status}: {opened}"));
    }
    let key = opened["session"]
        .as_str()
        .ok_or_else(|| format!("POST {open}: no session id in {opened}"))?;
    let url = format!("{base}/poll/{key}");
    let mut cursor = opened["cursor"].as_u64().unwrap_or(0);
    for frame in opened["frames"].as_array().cloned().unwrap_or_default() {
        check(&frame);
        let _ = tx.send(PollEvent::Frame(frame).into());
    }
    let reader = {
        let http = http.clone();
        let url = url.clone();
        tokio::spawn(async move {
            loop {
                let answer = async {
                    let response = http
                        .get(format!("{url}?ack={cursor}"))
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    let status = response.status().as_u16();
                    let text = response.text().await.map_err(|e| e.to_string())?;
                    let body: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
                    if status != 200 {
                        return Err(format!("poll answered {status}: {body}"));
                    }
                    Ok(body)
                };
                let body = match answer.await {
                    Ok(body) => body,
                    Err(e) => {
                        let _ = tx.send(PollEvent::Ended(e).into());
                        return;
                    }
                };
                cursor = body["cursor"].as_u64().unwrap_or(cursor);
                for frame in body["frames"].as_array().cloned().unwrap_or_default() {
                    check(&frame);
                    if tx.send(PollEvent::Frame(frame).into()).is_err() {
                        return;
                    }
                }
                if let Some(closed) = body.get("closed") {
                    let code = closed["code"].as_u64().unwrap_or(1006) as u16;
                    let reason = closed["reason"].as_str().unwrap_or("").to_owned();
                    let _ = tx.send(PollEvent::Closed(code, reason).into());
                    return;
                }
            }
        })
    };
    Ok((
        PollSink {
            http: http.clone(),
            url,
            seq: 0,
        },
        reader,
    ))
}
