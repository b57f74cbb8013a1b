//! Issue 18: a seeded, replayable convergence fuzzer for shared documents, against the real
//! binary over real sockets.
//!
//! Several clients edit one document with random inserts and deletes (ASCII, emoji, combining
//! marks, CJK), each running the client algorithm of `herald_protocol::ot::ClientDoc` (one
//! operation in flight, later edits composed into a buffer). On their side they delay reading
//! for random stretches, act in a random interleaving, resend their operation in flight (the
//! same `(client, seq)`), drop their connection and reconnect with catch-up, and move cursors.
//! After quiescence every client's text equals the server's, the server's log has each
//! `(client, seq)` once, and the version equals the number of distinct operations.
//!
//! CI runs a few seeds. Long runs: `HERALD_DOC_FUZZ_SEEDS=2000 cargo test -p herald-server
//! --release --test doc_convergence -- --nocapture`; one seed: `HERALD_DOC_FUZZ_SEED=N`. A
//! failing seed prints the command that replays it.

mod common;

use std::collections::{HashSet, VecDeque};
use std::time::Instant;

use common::{Client, Server};
use futures_util::{FutureExt, StreamExt};
use herald_protocol::document::{CommittedOp, Op};
use herald_protocol::ot::{self, char_len, ClientDoc, OpBuilder, Outgoing};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// Seeds CI runs.
const CI_SEEDS: u64 = 40;
/// Steps (actions of one client) per seed.
const STEPS: usize = 300;

/// SplitMix64: small, seedable, the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const ALPHABET: &[&str] = &[
    "a", "b", "c", " ", "\n", "👍", "🎉", "e\u{301}", "\u{308}", "漢", "字", "한", "ש",
];

fn random_text(rng: &mut Rng) -> String {
    (0..1 + rng.below(4))
        .map(|_| ALPHABET[rng.below(ALPHABET.len() as u64) as usize])
        .collect()
}

/// A random edit of a text of `len` code points: an insert, a delete, or both.
fn random_op(rng: &mut Rng, len: u64) -> Op {
    let mut b = OpBuilder::new();
    let at = rng.below(len + 1);
    b.retain(at);
    let mut rest = len - at;
    if rest == 0 || rng.chance(60) {
        b.insert(&random_text(rng));
    }
    if rest > 0 && rng.chance(50) {
        let n = 1 + rng.below(rest.min(4));
        b.delete(n);
        rest -= n;
    }
    b.retain(rest);
    b.build()
}

struct Fuzzer<'a> {
    /// The nodes; each connection goes to one at random.
    servers: &'a [Server],
    doc: String,
    seed: u64,
}

struct Editor {
    name: String,
    conn: Client,
    state: ClientDoc,
    /// Frames read from the socket and not yet acted on (the client's own delay).
    inbox: VecDeque<Value>,
}

impl Fuzzer<'_> {
    fn fail(&self, what: impl std::fmt::Display) -> ! {
        panic!("seed {}: {what}", self.seed)
    }

    async fn send(&self, editor: &mut Editor, out: &Outgoing) {
        let frame = json!({
            "type": "doc_op", "doc": self.doc, "client": editor.name,
            "seq": out.seq, "base": out.base, "op": out.op,
        });
        // A dead socket is found by the next read; the reconnect resends.
        let _ = futures_util::SinkExt::send(&mut editor.conn.ws, Message::text(frame.to_string()))
            .await;
    }

    /// Reads what has arrived, without waiting.
    fn pull(&self, editor: &mut Editor) {
        while let Some(Some(Ok(msg))) = editor.conn.ws.next().now_or_never() {
            if let Message::Text(t) = msg {
                editor
                    .inbox
                    .push_back(serde_json::from_str(t.as_str()).unwrap());
            }
        }
    }

    /// Acts on one server frame.
    async fn act(&self, editor: &mut Editor, frame: Value) {
        match frame["type"].as_str().unwrap_or("") {
            "doc_ack" => {
                let seq = frame["seq"].as_u64().unwrap();
                let version = frame["version"].as_u64().unwrap();
                if editor.state.outstanding.as_ref().map(|o| o.seq) == Some(seq) {
                    self.acked(editor, version).await;
                }
                // Otherwise a repeated ack for a resend: already taken.
            }
            "doc_op" => {
                let version = frame["version"].as_u64().unwrap();
                let own = frame["client"] == editor.name.as_str();
                let seq = frame["seq"].as_u64().unwrap();
                if version != editor.state.version + 1 {
                    self.fail(format!(
                        "{} at version {} got doc_op {version}",
                        editor.name, editor.state.version
                    ));
                }
                if own && editor.state.outstanding.as_ref().map(|o| o.seq) == Some(seq) {
                    // Our op, committed from a connection we dropped: it is our ack.
                    self.acked(editor, version).await;
                } else {
                    let op: Op = serde_json::from_value(frame["op"].clone()).unwrap();
                    if let Err(e) = editor.state.remote(version, &op) {
                        self.fail(format!("{}: remote op does not apply: {e}", editor.name));
                    }
                }
            }
            "doc_cursor" | "doc_joined" | "doc_left" | "pong" => {}
            _ => self.fail(format!("{} got {frame}", editor.name)),
        }
    }

    async fn acked(&self, editor: &mut Editor, version: u64) {
        if version != editor.state.version + 1 {
            self.fail(format!(
                "{} at version {} acked at {version}",
                editor.name, editor.state.version
            ));
        }
        if let Some(next) = editor.state.ack(version) {
            self.send(editor, &next).await;
        }
    }

    /// Drops the connection and opens a new one, catching up from the client's version and
    /// resending what is in flight.
    fn node(&self, rng: &mut Rng) -> &Server {
        &self.servers[rng.below(self.servers.len() as u64) as usize]
    }

    async fn reconnect(&self, editor: &mut Editor, rng: &mut Rng) {
        let _ = editor.conn.ws.close(None).await;
        editor.inbox.clear();
        editor.conn = self.node(rng).client().await;
        editor
            .conn
            .send(json!({"type":"doc_open","doc":self.doc,"since":editor.state.version}))
            .await;
        let opened = editor.conn.recv_type("doc_opened").await;
        if opened["recovered"] != true {
            self.fail(format!("{} could not catch up: {opened}", editor.name));
        }
        let ops: Vec<CommittedOp> = serde_json::from_value(opened["ops"].clone()).unwrap();
        for committed in ops {
            let frame = json!({
                "type": "doc_op", "version": committed.version, "op": committed.op,
                "client": committed.client, "seq": committed.seq,
            });
            // Our own op in the catch-up is its ack (an ack sends the buffer, based on the
            // version of that moment, which the server transforms from).
            self.act(editor, frame).await;
        }
        if let Some(again) = editor.state.resend() {
            self.send(editor, &again).await;
        }
    }

    /// Runs one seed; returns the operations committed, resends and reconnections.
    async fn run(&self, rng: &mut Rng) -> (u64, u64, u64) {
        let (mut resends, mut reconnects) = (0u64, 0u64);
        let editors_n = 2 + rng.below(4) as usize;
        let mut editors = Vec::new();
        for i in 0..editors_n {
            let mut conn = self.node(rng).client().await;
            conn.send(json!({"type":"doc_open","doc":self.doc})).await;
            let opened = conn.recv_type("doc_opened").await;
            let text = opened["text"].as_str().unwrap().to_owned();
            let version = opened["version"].as_u64().unwrap();
            editors.push(Editor {
                name: format!("s{}-e{i}", self.seed),
                conn,
                state: ClientDoc::new(text, version, 0),
                inbox: VecDeque::new(),
            });
        }
        for _ in 0..STEPS {
            let who = rng.below(editors_n as u64) as usize;
            let editor = &mut editors[who];
            let roll = rng.below(100);
            if roll < 45 {
                let op = random_op(rng, char_len(&editor.state.text));
                match editor.state.local(op) {
                    Ok(Some(out)) => self.send(editor, &out).await,
                    Ok(None) => {}
                    Err(e) => self.fail(format!("local edit: {e}")),
                }
            } else if roll < 75 {
                // Read now, act on a random number of what arrived (the rest waits).
                self.pull(editor);
                let n = rng.below(editor.inbox.len() as u64 + 1);
                for _ in 0..n {
                    let frame = editor.inbox.pop_front().unwrap();
                    self.act(editor, frame).await;
                }
            } else if roll < 82 {
                // A duplicate resend of what is in flight (as sent, or rebased).
                let again = if rng.chance(50) {
                    editor.state.outstanding.clone()
                } else {
                    editor.state.resend()
                };
                if let Some(again) = again {
                    resends += 1;
                    self.send(editor, &again).await;
                }
            } else if roll < 86 {
                // Act on everything read so far, then drop the connection.
                while let Some(frame) = editor.inbox.pop_front() {
                    self.act(editor, frame).await;
                }
                reconnects += 1;
                self.reconnect(editor, rng).await;
            } else if roll < 92 {
                let len = char_len(&editor.state.text);
                let (anchor, head) = (rng.below(len + 1), rng.below(len + 1));
                let frame = json!({
                    "type":"doc_cursor","doc":self.doc,"version":editor.state.version,
                    "cursor":{"anchor":anchor,"head":head},
                });
                editor.conn.send(frame).await;
            } else {
                // Let the server and the other clients run.
                tokio::task::yield_now().await;
            }
        }

        // Quiescence: act on everything until nobody has anything in flight.
        let started = Instant::now();
        loop {
            let mut busy = false;
            for editor in editors.iter_mut() {
                while let Some(frame) = editor.inbox.pop_front() {
                    self.act(editor, frame).await;
                }
                if !editor.state.is_synchronised() {
                    busy = true;
                    let frame = editor.conn.recv().await;
                    self.act(editor, frame).await;
                }
            }
            if !busy {
                break;
            }
            if started.elapsed() > common::WAIT * 6 {
                self.fail("no quiescence");
            }
        }
        // Nothing more can be committed: the server's state is final.
        let mut probe = self.servers[0].client().await;
        probe
            .send(json!({"type":"doc_open","doc":self.doc,"since":0}))
            .await;
        let opened = probe.recv_type("doc_opened").await;
        let version = opened["version"].as_u64().unwrap();
        let ops: Vec<CommittedOp> = serde_json::from_value(opened["ops"].clone()).unwrap();
        let mut text = String::new();
        let mut seen = HashSet::new();
        for (i, committed) in ops.iter().enumerate() {
            assert_eq!(committed.version, i as u64 + 1);
            text = ot::apply(&text, &committed.op).unwrap();
            if !seen.insert((committed.client.clone(), committed.seq)) {
                self.fail(format!("applied twice: {committed:?}"));
            }
        }
        let distinct: u64 = editors.iter().map(|e| e.state.last_seq).sum();
        if version != distinct || seen.len() as u64 != distinct {
            self.fail(format!(
                "version {version}, {} logged ops, {distinct} distinct ops made",
                seen.len()
            ));
        }
        for editor in editors.iter_mut() {
            while editor.state.version < version {
                let frame = editor.conn.recv().await;
                self.act(editor, frame).await;
            }
            if editor.state.text != text {
                self.fail(format!(
                    "{} has {:?}, the server {:?}",
                    editor.name, editor.state.text, text
                ));
            }
        }
        (version, resends, reconnects)
    }
}

/// Prints how to replay a seed when its run panics.
struct ReplayHint(u64, &'static str);

impl Drop for ReplayHint {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "\nreplay: HERALD_DOC_FUZZ_SEED={} cargo test -p herald-server --test \
                 doc_convergence {} -- --exact --nocapture\n",
                self.0, self.1
            );
        }
    }
}

/// The seeds to run: `HERALD_DOC_FUZZ_SEED` alone, or `HERALD_DOC_FUZZ_SEEDS` (default
/// `ci`) from 1.
fn seeds(ci: u64) -> Vec<u64> {
    match std::env::var("HERALD_DOC_FUZZ_SEED") {
        Ok(one) => vec![one.parse().expect("HERALD_DOC_FUZZ_SEED is a number")],
        Err(_) => {
            let n = std::env::var("HERALD_DOC_FUZZ_SEEDS")
                .map(|n| n.parse().expect("HERALD_DOC_FUZZ_SEEDS is a number"))
                .unwrap_or(ci);
            (1..=n).collect()
        }
    }
}

async fn fuzz(servers: &[Server], seeds: &[u64], test: &'static str, label: &str) {
    let started = Instant::now();
    let mut totals = (0, 0, 0);
    for &seed in seeds {
        let _hint = ReplayHint(seed, test);
        let fuzzer = Fuzzer {
            servers,
            doc: format!("fuzz-{label}-{seed}"),
            seed,
        };
        let (ops, resends, reconnects) = fuzzer.run(&mut Rng(seed)).await;
        totals = (totals.0 + ops, totals.1 + resends, totals.2 + reconnects);
    }
    eprintln!(
        "doc_convergence ({label}): {} seeds ({}..={}) converged in {:.1?}: {} ops committed, \
         {} duplicate resends, {} reconnections",
        seeds.len(),
        seeds.first().unwrap(),
        seeds.last().unwrap(),
        started.elapsed(),
        totals.0,
        totals.1,
        totals.2
    );
}

#[tokio::test]
async fn clients_converge_under_random_edits_delays_resends_and_disconnects() {
    let server = Server::with(&[], &[("HERALD_MESSAGE_RATE", "0")]);
    let test = "clients_converge_under_random_edits_delays_resends_and_disconnects";
    fuzz(&[server], &seeds(CI_SEEDS), test, "memory").await;
}

/// The same on two nodes sharing the machine's Redis: connections (and reconnections) land on
/// either node, so concurrent commits race through the commit script.
#[tokio::test]
async fn clients_on_two_nodes_sharing_redis_converge() {
    let prefix = common::cluster::prefix();
    let nodes = [
        common::cluster::node_on(common::cluster::REDIS, &prefix, &[]),
        common::cluster::node_on(common::cluster::REDIS, &prefix, &[]),
    ];
    for node in &nodes {
        common::cluster::wait_broker(node, "up", common::WAIT).await;
    }
    let test = "clients_on_two_nodes_sharing_redis_converge";
    fuzz(&nodes, &seeds(CI_SEEDS / 4), test, "redis").await;
}
