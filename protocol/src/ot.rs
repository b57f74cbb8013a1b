//! Operational transformation on plain text, counted in Unicode code points.
//!
//! No I/O: the server, its tests, the fuzzer and any Rust client share these functions.
//!
//! - [`apply`] an operation to a text;
//! - [`transform`] two concurrent operations on the same text into two that can follow each
//!   other (TP1: `apply(apply(s, a), b') == apply(apply(s, b), a')`);
//! - [`compose`] two consecutive operations into one;
//! - [`transform_position`] moves a cursor through an operation;
//! - [`ClientDoc`] is the client's side of the protocol (synchronised, awaiting confirm,
//!   awaiting with buffer).
//!
//! Operations are kept **canonical** by [`OpBuilder`]: no empty components, neighbours of one
//! kind merged, an insert always before a delete that touches it. Canonical operations compare
//! equal when they do the same thing.

use crate::document::{Component, Op, Selection};

/// Why an operation cannot be applied, transformed or composed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtError {
    /// The operation does not span the document: it retains and deletes `op` code points, the
    /// document (or the other operation) has `doc`.
    LengthMismatch {
        /// What the operation spans.
        op: u64,
        /// What it should span.
        doc: u64,
    },
    /// A component is empty (`retain` or `delete` of 0, `insert` of `""`).
    EmptyComponent,
}

impl std::fmt::Display for OtError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OtError::LengthMismatch { op, doc } => write!(
                f,
                "the operation spans {op} code points but the document has {doc}"
            ),
            OtError::EmptyComponent => f.write_str("an operation component is empty"),
        }
    }
}

impl std::error::Error for OtError {}

/// Code points in `s`.
pub fn char_len(s: &str) -> u64 {
    s.chars().count() as u64
}

/// Builds canonical operations.
#[derive(Debug, Default, Clone)]
pub struct OpBuilder {
    ops: Vec<Component>,
}

impl OpBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        OpBuilder::default()
    }

    /// Keeps `n` code points.
    pub fn retain(&mut self, n: u64) -> &mut Self {
        if n == 0 {
            return self;
        }
        if let Some(Component::Retain(last)) = self.ops.last_mut() {
            *last += n;
        } else {
            self.ops.push(Component::Retain(n));
        }
        self
    }

    /// Inserts `s`.
    pub fn insert(&mut self, s: &str) -> &mut Self {
        if s.is_empty() {
            return self;
        }
        match self.ops.as_mut_slice() {
            [.., Component::Insert(last)] => last.push_str(s),
            // An insert next to a delete goes before it: the same effect, one canonical form.
            [.., Component::Insert(before), Component::Delete(_)] => before.push_str(s),
            [.., Component::Delete(_)] => {
                let at = self.ops.len() - 1;
                self.ops.insert(at, Component::Insert(s.to_owned()));
            }
            _ => self.ops.push(Component::Insert(s.to_owned())),
        }
        self
    }

    /// Deletes `n` code points.
    pub fn delete(&mut self, n: u64) -> &mut Self {
        if n == 0 {
            return self;
        }
        if let Some(Component::Delete(last)) = self.ops.last_mut() {
            *last += n;
        } else {
            self.ops.push(Component::Delete(n));
        }
        self
    }

    /// The operation.
    pub fn build(&mut self) -> Op {
        Op(std::mem::take(&mut self.ops))
    }
}

impl Op {
    /// Code points the operation expects the document to have (retained + deleted).
    pub fn base_len(&self) -> u64 {
        self.0
            .iter()
            .map(|c| match c {
                Component::Retain(n) | Component::Delete(n) => *n,
                Component::Insert(_) => 0,
            })
            .sum()
    }

    /// Code points the document has after it (retained + inserted).
    pub fn target_len(&self) -> u64 {
        self.0
            .iter()
            .map(|c| match c {
                Component::Retain(n) => *n,
                Component::Insert(s) => char_len(s),
                Component::Delete(_) => 0,
            })
            .sum()
    }

    /// Code points it inserts.
    pub fn inserted_len(&self) -> u64 {
        self.0
            .iter()
            .map(|c| match c {
                Component::Insert(s) => char_len(s),
                _ => 0,
            })
            .sum()
    }

    /// Whether it changes nothing (only retains).
    pub fn is_noop(&self) -> bool {
        self.0.iter().all(|c| matches!(c, Component::Retain(_)))
    }

    /// Refuses empty components (the schema does too; this covers operations built in code).
    pub fn check(&self) -> Result<(), OtError> {
        let empty = self.0.iter().any(|c| match c {
            Component::Retain(n) | Component::Delete(n) => *n == 0,
            Component::Insert(s) => s.is_empty(),
        });
        if empty {
            Err(OtError::EmptyComponent)
        } else {
            Ok(())
        }
    }

    /// The same operation in canonical form.
    pub fn normalized(&self) -> Op {
        let mut b = OpBuilder::new();
        for c in &self.0 {
            match c {
                Component::Retain(n) => b.retain(*n),
                Component::Insert(s) => b.insert(s),
                Component::Delete(n) => b.delete(*n),
            };
        }
        b.build()
    }
}

/// Applies `op` to `text`; the operation must span the text exactly.
pub fn apply(text: &str, op: &Op) -> Result<String, OtError> {
    op.check()?;
    let len = char_len(text);
    if op.base_len() != len {
        return Err(OtError::LengthMismatch {
            op: op.base_len(),
            doc: len,
        });
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    for c in &op.0 {
        match c {
            Component::Retain(n) => out.extend(chars.by_ref().take(*n as usize)),
            Component::Insert(s) => out.push_str(s),
            Component::Delete(n) => {
                for _ in 0..*n {
                    chars.next();
                }
            }
        }
    }
    Ok(out)
}

/// A reader over an operation's components that hands out pieces of at most a given length.
struct Reader<'a> {
    ops: &'a [Component],
    index: usize,
    /// What is left of the current component: code points already consumed from it.
    used: u64,
}

/// One piece of a component.
enum Piece<'a> {
    Retain(u64),
    Insert(&'a str),
    Delete(u64),
}

impl<'a> Reader<'a> {
    fn new(op: &'a Op) -> Self {
        Reader {
            ops: &op.0,
            index: 0,
            used: 0,
        }
    }

    /// The current component's kind and what is left of its length, without consuming.
    fn peek(&self) -> Option<(u8, u64)> {
        let c = self.ops.get(self.index)?;
        Some(match c {
            Component::Retain(n) => (0, n - self.used),
            Component::Insert(s) => (1, char_len(s) - self.used),
            Component::Delete(n) => (2, n - self.used),
        })
    }

    /// Takes at most `max` code points of the current component.
    fn take(&mut self, max: u64) -> Option<Piece<'a>> {
        let c = self.ops.get(self.index)?;
        let (total, piece) = match c {
            Component::Retain(n) => {
                let m = (n - self.used).min(max);
                (*n, (Piece::Retain(m), m))
            }
            Component::Delete(n) => {
                let m = (n - self.used).min(max);
                (*n, (Piece::Delete(m), m))
            }
            Component::Insert(s) => {
                let total = char_len(s);
                let m = (total - self.used).min(max);
                let start = byte_at(s, self.used);
                let end = start + byte_at(&s[start..], m);
                (total, (Piece::Insert(&s[start..end]), m))
            }
        };
        let (piece, m) = piece;
        self.used += m;
        if self.used == total {
            self.index += 1;
            self.used = 0;
        }
        Some(piece)
    }

    /// Takes the rest of the current component.
    fn take_all(&mut self) -> Option<Piece<'a>> {
        self.take(u64::MAX)
    }
}

/// The byte index of the `n`th code point of `s` (its length when `n` is past the end).
fn byte_at(s: &str, n: u64) -> usize {
    s.char_indices()
        .nth(n as usize)
        .map(|(i, _)| i)
        .unwrap_or(s.len())
}

/// Transforms two operations made concurrently on the same document: returns `(a', b')` with
/// `apply(apply(s, a), b') == apply(apply(s, b), a')`. Where both insert at the same place,
/// `a`'s text comes first.
pub fn transform(a: &Op, b: &Op) -> Result<(Op, Op), OtError> {
    a.check()?;
    b.check()?;
    if a.base_len() != b.base_len() {
        return Err(OtError::LengthMismatch {
            op: b.base_len(),
            doc: a.base_len(),
        });
    }
    let mut a2 = OpBuilder::new();
    let mut b2 = OpBuilder::new();
    let mut ra = Reader::new(a);
    let mut rb = Reader::new(b);
    loop {
        match (ra.peek(), rb.peek()) {
            (None, None) => break,
            (Some((1, _)), _) => {
                if let Some(Piece::Insert(s)) = ra.take_all() {
                    a2.insert(s);
                    b2.retain(char_len(s));
                }
            }
            (_, Some((1, _))) => {
                if let Some(Piece::Insert(s)) = rb.take_all() {
                    a2.retain(char_len(s));
                    b2.insert(s);
                }
            }
            (Some((ka, la)), Some((kb, lb))) => {
                let m = la.min(lb);
                ra.take(m);
                rb.take(m);
                match (ka, kb) {
                    (0, 0) => {
                        a2.retain(m);
                        b2.retain(m);
                    }
                    (2, 2) => {}
                    (2, 0) => {
                        a2.delete(m);
                    }
                    (0, 2) => {
                        b2.delete(m);
                    }
                    _ => unreachable!("inserts are handled above"),
                }
            }
            // Equal base lengths make both run out together.
            _ => unreachable!("operations of equal base length end together"),
        }
    }
    Ok((a2.build(), b2.build()))
}

/// Composes two consecutive operations (`b` applies to what `a` produces) into one with the
/// same effect: `apply(s, compose(a, b)) == apply(apply(s, a), b)`.
pub fn compose(a: &Op, b: &Op) -> Result<Op, OtError> {
    a.check()?;
    b.check()?;
    if a.target_len() != b.base_len() {
        return Err(OtError::LengthMismatch {
            op: b.base_len(),
            doc: a.target_len(),
        });
    }
    let mut out = OpBuilder::new();
    let mut ra = Reader::new(a);
    let mut rb = Reader::new(b);
    loop {
        match (ra.peek(), rb.peek()) {
            (None, None) => break,
            (Some((2, _)), _) => {
                if let Some(Piece::Delete(n)) = ra.take_all() {
                    out.delete(n);
                }
            }
            (_, Some((1, _))) => {
                if let Some(Piece::Insert(s)) = rb.take_all() {
                    out.insert(s);
                }
            }
            (Some((_, la)), Some((kb, lb))) => {
                let m = la.min(lb);
                let pa = ra.take(m);
                rb.take(m);
                match (pa, kb) {
                    (Some(Piece::Retain(n)), 0) => {
                        out.retain(n);
                    }
                    (Some(Piece::Retain(n)), 2) => {
                        out.delete(n);
                    }
                    (Some(Piece::Insert(s)), 0) => {
                        out.insert(s);
                    }
                    // An insert deleted right away leaves nothing.
                    (Some(Piece::Insert(_)), 2) => {}
                    _ => unreachable!("deletes of a and inserts of b are handled above"),
                }
            }
            _ => unreachable!("a's target and b's base have the same length"),
        }
    }
    Ok(out.build())
}

/// Where a position ends up after `op`. Text inserted exactly at the position goes before it
/// when `insert_before` (another participant's cursor: their text pushes it along), after it
/// otherwise (the author's own caret is handled by the author).
pub fn transform_position(position: u64, op: &Op, insert_before: bool) -> u64 {
    let mut at = 0u64; // where we are in the old document
    let mut shift = 0i128; // how far positions after `at` have moved
    for c in &op.0 {
        if at > position || (at == position && !insert_before) {
            break;
        }
        match c {
            Component::Retain(n) => at += n,
            Component::Insert(s) => shift += i128::from(char_len(s)),
            Component::Delete(n) => {
                let gone = (*n).min(position.saturating_sub(at));
                shift -= i128::from(gone);
                at += n;
            }
        }
    }
    let pos = u64::try_from((i128::from(position) + shift).max(0)).unwrap_or(u64::MAX);
    pos.min(op.target_len())
}

/// A selection after `op` (see [`transform_position`]).
pub fn transform_selection(sel: Selection, op: &Op) -> Selection {
    Selection {
        anchor: transform_position(sel.anchor, op, true),
        head: transform_position(sel.head, op, true),
    }
}

/// What a [`ClientDoc`] asks its owner to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The version the operation is based on.
    pub base: u64,
    /// The client's sequence number for it.
    pub seq: u64,
    /// The operation.
    pub op: Op,
}

/// The client's side of a document: its text, the last version the server confirmed, and at
/// most one operation in flight, with what the user did meanwhile composed into a buffer
/// (states: synchronised, awaiting confirm, awaiting with buffer).
#[derive(Debug, Clone)]
pub struct ClientDoc {
    /// The text as the user sees it (server state plus the operation in flight and the buffer).
    pub text: String,
    /// The last version the server confirmed.
    pub version: u64,
    /// The operation sent and not yet acknowledged.
    pub outstanding: Option<Outgoing>,
    /// Local edits made while one was in flight, composed.
    pub buffer: Option<Op>,
    /// The sequence number of the last operation this client created.
    pub last_seq: u64,
}

impl ClientDoc {
    /// A document synchronised at `version` with `text`; sequence numbers continue after
    /// `last_seq`.
    pub fn new(text: String, version: u64, last_seq: u64) -> Self {
        ClientDoc {
            text,
            version,
            outstanding: None,
            buffer: None,
            last_seq,
        }
    }

    /// Whether nothing is in flight and nothing buffered.
    pub fn is_synchronised(&self) -> bool {
        self.outstanding.is_none() && self.buffer.is_none()
    }

    /// The user edited the text; returns the operation to send now, if nothing was in flight.
    pub fn local(&mut self, op: Op) -> Result<Option<Outgoing>, OtError> {
        self.text = apply(&self.text, &op)?;
        if self.outstanding.is_some() {
            self.buffer = Some(match self.buffer.take() {
                Some(buffer) => compose(&buffer, &op)?,
                None => op,
            });
            return Ok(None);
        }
        self.last_seq += 1;
        let out = Outgoing {
            base: self.version,
            seq: self.last_seq,
            op,
        };
        self.outstanding = Some(out.clone());
        Ok(Some(out))
    }

    /// The server acknowledged the operation in flight at `version`; returns the buffered one
    /// to send next, if any.
    pub fn ack(&mut self, version: u64) -> Option<Outgoing> {
        self.outstanding.as_ref()?;
        self.outstanding = None;
        self.version = version;
        let op = self.buffer.take()?;
        self.last_seq += 1;
        let out = Outgoing {
            base: self.version,
            seq: self.last_seq,
            op,
        };
        self.outstanding = Some(out.clone());
        Some(out)
    }

    /// Another client's operation, committed at `version`: transformed through what is in
    /// flight and buffered, then applied. Returns the operation as applied to `text` (for an
    /// editor to replay).
    pub fn remote(&mut self, version: u64, op: &Op) -> Result<Op, OtError> {
        let mut incoming = op.clone();
        if let Some(out) = self.outstanding.as_mut() {
            // The server's operation came first: its inserts win ties, as on the server.
            let (server2, out2) = transform(&incoming, &out.op)?;
            out.op = out2;
            incoming = server2;
        }
        if let Some(buffer) = self.buffer.as_mut() {
            let (server2, buffer2) = transform(&incoming, buffer)?;
            *buffer = buffer2;
            incoming = server2;
        }
        self.text = apply(&self.text, &incoming)?;
        self.version = version;
        Ok(incoming)
    }

    /// The operation to resend after a reconnection (the same `seq`, so the server applies it
    /// at most once), rebased on the version the client has now.
    pub fn resend(&self) -> Option<Outgoing> {
        let out = self.outstanding.as_ref()?;
        Some(Outgoing {
            base: self.version,
            seq: out.seq,
            op: out.op.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(parts: &[(&str, &str)]) -> Op {
        let mut b = OpBuilder::new();
        for (kind, v) in parts {
            match *kind {
                "r" => b.retain(v.parse().unwrap()),
                "i" => b.insert(v),
                "d" => b.delete(v.parse().unwrap()),
                _ => unreachable!(),
            };
        }
        b.build()
    }

    #[test]
    fn apply_counts_code_points() {
        // 👍 is one code point (two UTF-16 units), é here is e + U+0301 (two code points).
        let text = "a👍e\u{301}漢字";
        assert_eq!(char_len(text), 6);
        let o = op(&[
            ("r", "1"),
            ("d", "1"),
            ("i", "🎉"),
            ("r", "2"),
            ("d", "1"),
            ("r", "1"),
        ]);
        assert_eq!(apply(text, &o).unwrap(), "a🎉e\u{301}字");
        assert_eq!(
            apply(text, &op(&[("r", "7")])),
            Err(OtError::LengthMismatch { op: 7, doc: 6 })
        );
    }

    #[test]
    fn concurrent_inserts_at_one_place_put_a_first() {
        let a = op(&[("r", "1"), ("i", "X")]);
        let b = op(&[("r", "1"), ("i", "Y")]);
        let (a2, b2) = transform(&a, &b).unwrap();
        let left = apply(&apply("q", &a).unwrap(), &b2).unwrap();
        let right = apply(&apply("q", &b).unwrap(), &a2).unwrap();
        assert_eq!(left, "qXY");
        assert_eq!(left, right);
    }

    #[test]
    fn overlapping_deletes_delete_once() {
        let s = "héllo wörld";
        let a = op(&[("r", "2"), ("d", "5"), ("r", "4")]);
        let b = op(&[("r", "4"), ("d", "5"), ("r", "2")]);
        let (a2, b2) = transform(&a, &b).unwrap();
        let left = apply(&apply(s, &a).unwrap(), &b2).unwrap();
        let right = apply(&apply(s, &b).unwrap(), &a2).unwrap();
        assert_eq!(left, "héld");
        assert_eq!(left, right);
    }

    #[test]
    fn compose_matches_sequential_application() {
        let s = "e\u{301}👍";
        let a = op(&[("i", "漢"), ("r", "3")]);
        let b = op(&[("d", "2"), ("i", "字"), ("r", "2")]);
        let c = compose(&a, &b).unwrap();
        assert_eq!(
            apply(s, &c).unwrap(),
            apply(&apply(s, &a).unwrap(), &b).unwrap()
        );
        assert_eq!(apply(s, &c).unwrap(), "字\u{301}👍");
    }

    #[test]
    fn positions_follow_inserts_and_deletes() {
        let o = op(&[("r", "2"), ("i", "ab"), ("r", "1"), ("d", "2"), ("r", "1")]);
        assert_eq!(transform_position(0, &o, true), 0);
        assert_eq!(transform_position(2, &o, true), 4);
        assert_eq!(transform_position(2, &o, false), 2);
        assert_eq!(transform_position(3, &o, true), 5);
        assert_eq!(transform_position(4, &o, true), 5);
        assert_eq!(transform_position(5, &o, true), 5);
        assert_eq!(transform_position(6, &o, true), 6);
        assert_eq!(transform_position(60, &o, true), 6);
    }

    #[test]
    fn builder_is_canonical() {
        let a = op(&[("r", "1"), ("d", "1"), ("i", "x"), ("i", "y"), ("r", "0")]);
        assert_eq!(
            a.0,
            vec![
                Component::Retain(1),
                Component::Insert("xy".into()),
                Component::Delete(1)
            ]
        );
    }

    #[test]
    fn a_client_converges_with_a_remote_edit_while_awaiting_with_buffer() {
        let mut c = ClientDoc::new("abc".into(), 3, 0);
        let first = c.local(op(&[("i", "1"), ("r", "3")])).unwrap().unwrap();
        assert_eq!((first.base, first.seq), (3, 1));
        assert!(c.local(op(&[("r", "4"), ("i", "2")])).unwrap().is_none());
        assert_eq!(c.text, "1abc2");
        // Someone deleted "b" at version 4.
        c.remote(4, &op(&[("r", "1"), ("d", "1"), ("r", "1")]))
            .unwrap();
        assert_eq!(c.text, "1ac2");
        let next = c.ack(5).unwrap();
        assert_eq!((next.base, next.seq), (5, 2));
        assert_eq!(apply("1ac", &next.op).unwrap(), "1ac2");
    }
}
