//! Property tests of the operational transformation (capability `documents`): on texts made of
//! ASCII, emoji (astral code points, two UTF-16 units each), combining marks and CJK, every
//! operation keeps its lengths, transform satisfies TP1, compose equals applying in turn, and
//! the client state machine converges with a server that transforms the same way.

use herald_protocol::document::{Component, Op};
use herald_protocol::ot::{self, char_len, ClientDoc, OpBuilder};
use proptest::collection::vec;
use proptest::prelude::*;

/// Code points of every kind the issue names: ASCII, emoji (including a ZWJ sequence's parts and
/// a skin-tone modifier), combining marks, CJK, and a right-to-left letter.
const ALPHABET: &[char] = &[
    'a',
    'b',
    ' ',
    '\n',
    '👍',
    '🎉',
    '\u{1F3FD}',
    '\u{200D}',
    '\u{301}',
    '\u{308}',
    'e',
    '漢',
    '字',
    '한',
    'ש',
];

fn text() -> impl Strategy<Value = String> {
    vec(0..ALPHABET.len(), 0..24).prop_map(|i| i.into_iter().map(|i| ALPHABET[i]).collect())
}

/// Raw choices that [`op_for`] turns into a valid operation on a text of any length.
fn choices() -> impl Strategy<Value = Vec<(u8, u8, String)>> {
    vec((0u8..3, 1u8..6, text()), 0..8)
}

/// A valid operation on a text of `len` code points, driven by `choices`.
fn op_for(len: u64, choices: &[(u8, u8, String)]) -> Op {
    let mut b = OpBuilder::new();
    let mut left = len;
    for (kind, n, s) in choices {
        let n = u64::from(*n).min(left);
        match kind {
            0 => {
                b.retain(n);
                left -= n;
            }
            1 => {
                b.insert(s);
            }
            _ => {
                b.delete(n);
                left -= n;
            }
        }
    }
    b.retain(left);
    b.build()
}

fn canonical(op: &Op) -> bool {
    op.0.windows(2).all(|w| {
        !matches!(
            (&w[0], &w[1]),
            (Component::Retain(_), Component::Retain(_))
                | (Component::Insert(_), Component::Insert(_))
                | (Component::Delete(_), Component::Delete(_))
                | (Component::Delete(_), Component::Insert(_))
        )
    }) && op.check().is_ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn apply_keeps_the_lengths(s in text(), c in choices()) {
        let op = op_for(char_len(&s), &c);
        prop_assert!(canonical(&op));
        let out = ot::apply(&s, &op).unwrap();
        prop_assert_eq!(char_len(&out), op.target_len());
    }

    #[test]
    fn transform_satisfies_tp1(s in text(), ca in choices(), cb in choices()) {
        let len = char_len(&s);
        let (a, b) = (op_for(len, &ca), op_for(len, &cb));
        let (a2, b2) = ot::transform(&a, &b).unwrap();
        prop_assert!(canonical(&a2) && canonical(&b2));
        let left = ot::apply(&ot::apply(&s, &a).unwrap(), &b2).unwrap();
        let right = ot::apply(&ot::apply(&s, &b).unwrap(), &a2).unwrap();
        prop_assert_eq!(left, right);
    }

    #[test]
    fn compose_equals_applying_in_turn(s in text(), ca in choices(), cb in choices()) {
        let a = op_for(char_len(&s), &ca);
        let mid = ot::apply(&s, &a).unwrap();
        let b = op_for(char_len(&mid), &cb);
        let ab = ot::compose(&a, &b).unwrap();
        prop_assert!(canonical(&ab));
        prop_assert_eq!(ot::apply(&s, &ab).unwrap(), ot::apply(&mid, &b).unwrap());
    }

    #[test]
    fn a_wrong_length_is_an_error_not_a_panic(s in text(), c in choices(), extra in 1u64..5) {
        let op = op_for(char_len(&s) + extra, &c);
        prop_assert!(ot::apply(&s, &op).is_err());
        let other = op_for(char_len(&s), &c);
        prop_assert!(ot::transform(&op, &other).is_err());
    }

    #[test]
    fn positions_stay_in_range(s in text(), c in choices(), p in 0u64..30) {
        let op = op_for(char_len(&s), &c);
        prop_assert!(ot::transform_position(p, &op, true) <= op.target_len());
        prop_assert!(ot::transform_position(p, &op, false) <= op.target_len());
    }

    #[test]
    fn ops_round_trip_through_json(s in text(), c in choices()) {
        let op = op_for(char_len(&s), &c);
        let json = serde_json::to_string(&op).unwrap();
        prop_assert_eq!(serde_json::from_str::<Op>(&json).unwrap(), op);
    }

    /// Two clients edit concurrently through a model server (transform against the log, apply,
    /// number), with deliveries interleaved at random: both end with the server's text.
    #[test]
    #[allow(clippy::needless_range_loop)]
    fn clients_converge_with_a_transforming_server(
        start in text(),
        steps in vec((0u8..4, choices()), 1..30),
    ) {
        let mut server = start.clone();
        let mut log: Vec<Op> = Vec::new();
        let mut clients = [ClientDoc::new(start.clone(), 0, 0), ClientDoc::new(start, 0, 0)];
        // What each client has received from the server, in order: (version, op, own?).
        let mut inbox: [Vec<(u64, Op, bool)>; 2] = [Vec::new(), Vec::new()];
        let mut sent: [Option<ot::Outgoing>; 2] = [None, None];
        let submit = |server: &mut String, log: &mut Vec<Op>, out: &ot::Outgoing| -> (u64, Op) {
            let mut op = out.op.clone();
            for committed in &log[out.base as usize..] {
                op = ot::transform(committed, &op).unwrap().1;
            }
            *server = ot::apply(server, &op).unwrap();
            log.push(op.clone());
            (log.len() as u64, op)
        };
        for (kind, c) in steps.iter().chain(std::iter::repeat_n(&(3u8, Vec::new()), 200)) {
            let who = usize::from(*kind) % 2;
            match kind {
                // A local edit.
                0 | 1 => {
                    let op = op_for(char_len(&clients[who].text), c);
                    if let Some(out) = clients[who].local(op).unwrap() {
                        sent[who] = Some(out);
                    }
                }
                // The server takes whatever is in flight, then everyone reads one message.
                _ => {
                    for i in 0..2 {
                        if let Some(out) = sent[i].take() {
                            let (version, op) = submit(&mut server, &mut log, &out);
                            for (j, inbox) in inbox.iter_mut().enumerate() {
                                inbox.push((version, op.clone(), i == j));
                            }
                        }
                    }
                    for i in 0..2 {
                        if inbox[i].is_empty() {
                            continue;
                        }
                        let (version, op, own) = inbox[i].remove(0);
                        if own {
                            if let Some(next) = clients[i].ack(version) {
                                sent[i] = Some(next);
                            }
                        } else {
                            clients[i].remote(version, &op).unwrap();
                        }
                    }
                }
            }
        }
        for client in &clients {
            prop_assert!(client.is_synchronised());
            prop_assert_eq!(&client.text, &server);
            prop_assert_eq!(client.version, log.len() as u64);
        }
    }
}
