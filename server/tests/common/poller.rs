//! A long-polling test client over real HTTP (`/poll`, capability `long-polling`).

use std::collections::VecDeque;

use serde_json::{json, Value};

use super::WAIT;

/// One polling session: its secret id, its cursor and send number, and the frames polled and
/// not read yet.
pub struct Poller {
    pub base: String,
    pub key: String,
    pub client_id: String,
    pub cursor: u64,
    pub seq: u64,
    pub http: reqwest::Client,
    pub pending: VecDeque<Value>,
    /// The `closed` object of the last answer that had one.
    pub closed: Option<Value>,
}

/// An HTTP answer: status and JSON body (`Value::Null` when empty).
pub async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("reading the answer");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

impl Poller {
    /// Opens a session on `base` (`http://host:port`) and reads its `welcome`.
    pub async fn open(base: &str) -> Poller {
        Poller::open_with(base, &[]).await
    }

    /// Opens a session with extra request headers (a token, an origin).
    pub async fn open_with(base: &str, headers: &[(&str, &str)]) -> Poller {
        let (status, body) = Poller::try_open(base, headers).await;
        assert_eq!(status, 200, "opening a polling session: {body}");
        let mut p = Poller {
            base: base.to_owned(),
            key: body["session"].as_str().expect("a session id").to_owned(),
            client_id: String::new(),
            cursor: body["cursor"].as_u64().expect("a cursor"),
            seq: 0,
            http: reqwest::Client::new(),
            pending: body["frames"].as_array().unwrap().iter().cloned().collect(),
            closed: None,
        };
        let welcome = p.recv_type("welcome").await;
        p.client_id = welcome["clientId"].as_str().unwrap().to_owned();
        p
    }

    /// `POST /poll` as it is answered.
    pub async fn try_open(base: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut request = reqwest::Client::new().post(format!("{base}/poll"));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        answer(request.send().await.expect("POST /poll")).await
    }

    pub fn url(&self) -> String {
        format!("{}/poll/{}", self.base, self.key)
    }

    /// One poll with `ack` as it is answered, without touching the client's state.
    pub async fn poll_raw(&self, ack: u64) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}?ack={ack}", self.url()))
            .send()
            .await
            .expect("GET /poll/{session}");
        answer(response).await
    }

    /// One poll acknowledging what was received; its frames join `pending`. Returns the answer.
    pub async fn poll(&mut self) -> Value {
        let (status, body) = self.poll_raw(self.cursor).await;
        assert_eq!(status, 200, "poll: {body}");
        self.take(&body);
        body
    }

    /// Takes an answer's frames and cursor.
    pub fn take(&mut self, body: &Value) {
        self.cursor = body["cursor"].as_u64().expect("a cursor");
        self.pending
            .extend(body["frames"].as_array().unwrap().iter().cloned());
        if let Some(closed) = body.get("closed") {
            self.closed = Some(closed.clone());
        }
    }

    /// The next frame, polling as needed (a hang guard of [`WAIT`]).
    pub async fn recv(&mut self) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(frame) = self.pending.pop_front() {
                return frame;
            }
            assert!(
                self.closed.is_none(),
                "the session was closed: {:?}",
                self.closed
            );
            tokio::time::timeout_at(deadline, self.poll())
                .await
                .expect("timed out waiting for a polled frame");
        }
    }

    /// The next frame, which must have this type.
    pub async fn recv_type(&mut self, kind: &str) -> Value {
        let frame = self.recv().await;
        assert_eq!(frame["type"], kind, "expected a {kind} frame, got {frame}");
        frame
    }

    /// Sends frames as the next numbered send; returns status and answer.
    pub async fn send_frames(&mut self, frames: Vec<Value>) -> (u16, Value) {
        self.seq += 1;
        self.send_seq(self.seq, frames).await
    }

    /// A send with a given number (for retries and out-of-order tests).
    pub async fn send_seq(&self, seq: u64, frames: Vec<Value>) -> (u16, Value) {
        self.post_body(json!({"seq": seq, "frames": frames}).to_string())
            .await
    }

    /// POSTs a raw body as JSON to the session.
    pub async fn post_body(&self, body: String) -> (u16, Value) {
        let response = self
            .http
            .post(self.url())
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("POST /poll/{session}");
        answer(response).await
    }

    /// Sends one frame and checks it was taken.
    pub async fn send(&mut self, frame: Value) {
        let (status, body) = self.send_frames(vec![frame]).await;
        assert_eq!(status, 200, "send: {body}");
        assert_eq!(body["seq"], self.seq);
    }

    /// Joins `room` as `user` and reads `room_joined`.
    pub async fn join(&mut self, room: &str, user: Value) -> Value {
        self.send(json!({"type":"join","room":room,"user":user}))
            .await;
        let joined = self.recv_type("room_joined").await;
        assert_eq!(joined["room"], room);
        joined
    }

    /// Sends an app-level ping and reads frames up to its pong: everything queued before it.
    pub async fn sync(&mut self) -> Vec<Value> {
        self.send(json!({"type":"ping"})).await;
        let mut before = Vec::new();
        loop {
            let frame = self.recv().await;
            if frame["type"] == "pong" {
                return before;
            }
            before.push(frame);
        }
    }

    /// `DELETE /poll/{session}`.
    pub async fn delete(&self) -> u16 {
        self.http
            .delete(self.url())
            .send()
            .await
            .expect("DELETE")
            .status()
            .as_u16()
    }
}
