//! The cluster bus: the one format of the messages nodes exchange through a broker's pub/sub,
//! encoded and decoded here and nowhere else.
//!
//! A message is a header line and a body: `h1 KIND FIELDS...\n BODY`. `h1` is the format's
//! version; a node drops (and counts) what it cannot read instead of guessing. Header fields are
//! separated by one space and never contain one (room names, epochs and member keys have no
//! spaces). Bodies are opaque to the broker's scripts: a script may write a header with the
//! numbers it assigns (offsets, presence sequence, event ids) and the keys it knows, and passes
//! bodies through; it never builds a client frame.
//!
//! | kind | header fields | body | written by |
//! |---|---|---|---|
//! | `R` room message | room, epoch, offset | the frame up to its offset ([`crate::wire::offset_prefix`]) | the chat script |
//! | `P` presence | room, sequence, member, `+` joined or `-` left, members after the change | the user's JSON, then for `+` (in rooms small enough for whole lists) one line per member's user JSON, in join order | the join, leave, reap and resync scripts |
//! | `V` volatile | room, member to skip (or `-`) | the encoded frame | the node |
//! | `U` private | target length in bytes | the target user id, then the encoded frame | the node (the script publishes it when the user is online) |
//! | `S` event | event id | the [`Event`] as JSON | the node's body, the event script's header |
//! | `D` direct | room, the receiving member | the encoded frame | the node's body, the direct script's header (written only when the member is in the room) |
//! | `O` document operation | document, version, author member, author's client seq | the encoded `doc_op` frame | the node's body, the commit script's header (written only when the version check passes) |
//! | `K` document frame | document, member to skip (or `-`) | the encoded frame (`doc_cursor`, `doc_joined`, `doc_left`) | the node |
//! | `A` document frame for one member | document, the member | the encoded frame (a repeated `doc_ack`, after the `O` of the first commit) | the node |
//! | `C` capability data, ordered | the capability's name | its data, opaque | the node ([`super::Command::Ordered`]) |
//!
//! Documents' kinds travel on their own channel (`P:docs`, see `broker::redis_docs`) and are
//! read with [`decode_doc`]; the format is the same.
//!
//! A member is `NODE/SESSION`.
//!
//! The Redis broker publishes each kind on the channel of what it concerns, so a node receives
//! only what it has local members for ([`super::interest`]): `R`, `P`, `V` and `D` on the room's
//! channel, `U` on the user's, `S` on the one channel every node reads. Layer 3.

use herald_protocol::{RoomName, User};

use super::Event;
use crate::wire::Utf8Bytes;

/// The format version every header starts with.
pub const VERSION: &str = "h1";

/// A decoded bus message.
#[derive(Debug, Clone, PartialEq)]
pub enum BusMessage {
    /// A room message with its stream position.
    Room {
        /// The room.
        room: RoomName,
        /// The stream's epoch.
        epoch: String,
        /// Its offset.
        offset: u64,
        /// The frame up to its offset.
        prefix: String,
    },
    /// A membership change.
    Presence {
        /// The room.
        room: RoomName,
        /// The room's presence sequence number.
        seq: u64,
        /// The member (`NODE/SESSION`) it concerns.
        member: String,
        /// Who joined or left.
        user: User,
        /// For a join, every member now, in join order (empty when the room is too large for
        /// whole lists); `None` for a leave.
        users: Option<Vec<User>>,
        /// How many members the room has after the change.
        members: u64,
    },
    /// A frame for a room's members, except one member.
    Volatile {
        /// The room.
        room: RoomName,
        /// The member to skip.
        except: Option<String>,
        /// The encoded frame.
        frame: Utf8Bytes,
    },
    /// A private message.
    Private {
        /// The recipient's user id.
        target: String,
        /// The encoded frame.
        frame: Utf8Bytes,
    },
    /// A resumable event with the cluster's id.
    Event {
        /// The event id.
        id: u64,
        /// The event.
        event: Event,
    },
    /// Data for a capability on every node, in the bus's order.
    Ordered {
        /// The capability's name.
        capability: String,
        /// Its data.
        body: String,
    },
    /// A frame for one member (`NODE/SESSION`) of a room.
    Direct {
        /// The room the member was in when the frame was published.
        room: RoomName,
        /// The receiving member.
        member: String,
        /// The encoded frame.
        frame: Utf8Bytes,
    },
}

/// Why a bus message was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable(pub String);

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad(why: impl Into<String>) -> Unreadable {
    Unreadable(why.into())
}

/// The header of a room message (what the chat script writes before the prefix).
pub fn room_header(room: &str, epoch: &str, offset: u64) -> String {
    format!("{VERSION} R {room} {epoch} {offset}\n")
}

/// A volatile message.
pub fn volatile(room: &RoomName, except: Option<&str>, frame: &str) -> String {
    format!(
        "{VERSION} V {} {}\n{frame}",
        room.as_str(),
        except.unwrap_or("-")
    )
}

/// A private message (published by the script only when the target is online).
pub fn private(target: &str, frame: &str) -> String {
    format!("{VERSION} U {}\n{target}{frame}", target.len())
}

/// The header of a direct frame (what the direct script writes before the frame).
pub fn direct_header(room: &str, member: &str) -> String {
    format!("{VERSION} D {room} {member}\n")
}

/// An event's body (the event script writes the header with the id).
pub fn event_body(event: &Event) -> String {
    serde_json::to_string(event).expect("events always serialise")
}

/// Encodes a whole message, as the scripts and the node together write it.
pub fn encode(message: &BusMessage) -> String {
    match message {
        BusMessage::Room {
            room,
            epoch,
            offset,
            prefix,
        } => format!("{}{prefix}", room_header(room.as_str(), epoch, *offset)),
        BusMessage::Presence {
            room,
            seq,
            member,
            user,
            users,
            members,
        } => {
            let json = |u: &User| serde_json::to_string(u).expect("users serialise");
            let mut out = format!(
                "{VERSION} P {} {seq} {member} {} {members}\n{}",
                room.as_str(),
                if users.is_some() { "+" } else { "-" },
                json(user)
            );
            for u in users.iter().flatten() {
                out.push('\n');
                out.push_str(&json(u));
            }
            out
        }
        BusMessage::Volatile {
            room,
            except,
            frame,
        } => volatile(room, except.as_deref(), frame.as_str()),
        BusMessage::Private { target, frame } => private(target, frame.as_str()),
        BusMessage::Event { id, event } => format!("{VERSION} S {id}\n{}", event_body(event)),
        BusMessage::Direct {
            room,
            member,
            frame,
        } => format!("{}{}", direct_header(room.as_str(), member), frame.as_str()),
        BusMessage::Ordered { capability, body } => ordered(capability, body),
    }
}

/// Data for a capability on every node.
pub fn ordered(capability: &str, body: &str) -> String {
    format!("{VERSION} C {capability}\n{body}")
}

fn field<'a>(
    fields: &mut impl Iterator<Item = &'a str>,
    name: &str,
) -> Result<&'a str, Unreadable> {
    fields
        .next()
        .filter(|f| !f.is_empty())
        .ok_or_else(|| bad(format!("missing {name}")))
}

fn number(text: &str, name: &str) -> Result<u64, Unreadable> {
    text.parse()
        .map_err(|_| bad(format!("{name} is not a number")))
}

fn user(json: &str) -> Result<User, Unreadable> {
    serde_json::from_str(json).map_err(|e| bad(format!("a user does not parse: {e}")))
}

/// Reads one bus message. Never panics, whatever the payload (any client of the Redis server
/// can publish on the bus).
pub fn decode(payload: &[u8]) -> Result<BusMessage, Unreadable> {
    let text = std::str::from_utf8(payload).map_err(|_| bad("not UTF-8"))?;
    let (header, body) = text.split_once('\n').ok_or_else(|| bad("no header line"))?;
    let mut fields = header.split(' ');
    let version = field(&mut fields, "version")?;
    if version != VERSION {
        return Err(bad(format!("unknown format {version:?}")));
    }
    let kind = field(&mut fields, "kind")?;
    let message = match kind {
        "R" => BusMessage::Room {
            room: RoomName::from(field(&mut fields, "room")?),
            epoch: field(&mut fields, "epoch")?.to_owned(),
            offset: number(field(&mut fields, "offset")?, "offset")?,
            prefix: body.to_owned(),
        },
        "P" => {
            let room = RoomName::from(field(&mut fields, "room")?);
            let seq = number(field(&mut fields, "sequence")?, "sequence")?;
            let member = field(&mut fields, "member")?.to_owned();
            let joined = match field(&mut fields, "change")? {
                "+" => true,
                "-" => false,
                other => return Err(bad(format!("unknown presence change {other:?}"))),
            };
            let members = number(field(&mut fields, "members")?, "members")?;
            let mut lines = body.split('\n');
            let who = user(lines.next().unwrap_or_default())?;
            let users = if joined {
                Some(lines.map(user).collect::<Result<Vec<_>, _>>()?)
            } else {
                None
            };
            BusMessage::Presence {
                room,
                seq,
                member,
                user: who,
                users,
                members,
            }
        }
        "V" => BusMessage::Volatile {
            room: RoomName::from(field(&mut fields, "room")?),
            except: Some(field(&mut fields, "member")?)
                .filter(|m| *m != "-")
                .map(str::to_owned),
            frame: Utf8Bytes::from(body.to_owned()),
        },
        "U" => {
            let len = number(field(&mut fields, "target length")?, "target length")? as usize;
            if !body.is_char_boundary(len.min(body.len())) || len > body.len() {
                return Err(bad("the target length does not fit the body"));
            }
            let (target, frame) = body.split_at(len);
            BusMessage::Private {
                target: target.to_owned(),
                frame: Utf8Bytes::from(frame.to_owned()),
            }
        }
        "S" => BusMessage::Event {
            id: number(field(&mut fields, "id")?, "id")?,
            event: serde_json::from_str(body)
                .map_err(|e| bad(format!("an event does not parse: {e}")))?,
        },
        "D" => BusMessage::Direct {
            room: RoomName::from(field(&mut fields, "room")?),
            member: field(&mut fields, "member")?.to_owned(),
            frame: Utf8Bytes::from(body.to_owned()),
        },
        "C" => BusMessage::Ordered {
            capability: field(&mut fields, "capability")?.to_owned(),
            body: body.to_owned(),
        },
        other => return Err(bad(format!("unknown kind {other:?}"))),
    };
    if fields.next().is_some() {
        return Err(bad("extra header fields"));
    }
    Ok(message)
}

/// A message about a shared document (capability `documents`).
#[derive(Debug, Clone, PartialEq)]
pub enum DocBusMessage {
    /// An operation committed at `version`.
    Op {
        /// The document.
        doc: herald_protocol::document::DocId,
        /// The version it made.
        version: u64,
        /// The author's member (`NODE/SESSION`).
        member: String,
        /// The author's client sequence number.
        seq: u64,
        /// The encoded `doc_op` frame.
        frame: Utf8Bytes,
    },
    /// A frame for one member (a repeated ack: on the bus, it comes after the operation).
    To {
        /// The document.
        doc: herald_protocol::document::DocId,
        /// The member.
        member: String,
        /// The encoded frame.
        frame: Utf8Bytes,
    },
    /// A frame for the document's participants, except one member.
    Frame {
        /// The document.
        doc: herald_protocol::document::DocId,
        /// The member to skip.
        except: Option<String>,
        /// The encoded frame.
        frame: Utf8Bytes,
    },
}

/// Encodes a document message.
pub fn encode_doc(message: &DocBusMessage) -> String {
    match message {
        DocBusMessage::Op {
            doc,
            version,
            member,
            seq,
            frame,
        } => format!(
            "{VERSION} O {} {version} {member} {seq}\n{}",
            doc.as_str(),
            frame.as_str()
        ),
        DocBusMessage::To { doc, member, frame } => {
            format!("{VERSION} A {} {member}\n{}", doc.as_str(), frame.as_str())
        }
        DocBusMessage::Frame { doc, except, frame } => format!(
            "{VERSION} K {} {}\n{}",
            doc.as_str(),
            except.as_deref().unwrap_or("-"),
            frame.as_str()
        ),
    }
}

/// Reads one document message; never panics.
pub fn decode_doc(payload: &[u8]) -> Result<DocBusMessage, Unreadable> {
    let text = std::str::from_utf8(payload).map_err(|_| bad("not UTF-8"))?;
    let (header, body) = text.split_once('\n').ok_or_else(|| bad("no header line"))?;
    let mut fields = header.split(' ');
    let version = field(&mut fields, "version")?;
    if version != VERSION {
        return Err(bad(format!("unknown format {version:?}")));
    }
    let message = match field(&mut fields, "kind")? {
        "O" => DocBusMessage::Op {
            doc: field(&mut fields, "document")?.into(),
            version: number(field(&mut fields, "version")?, "version")?,
            member: field(&mut fields, "member")?.to_owned(),
            seq: number(field(&mut fields, "seq")?, "seq")?,
            frame: Utf8Bytes::from(body.to_owned()),
        },
        "A" => DocBusMessage::To {
            doc: field(&mut fields, "document")?.into(),
            member: field(&mut fields, "member")?.to_owned(),
            frame: Utf8Bytes::from(body.to_owned()),
        },
        "K" => DocBusMessage::Frame {
            doc: field(&mut fields, "document")?.into(),
            except: Some(field(&mut fields, "member")?)
                .filter(|m| *m != "-")
                .map(str::to_owned),
            frame: Utf8Bytes::from(body.to_owned()),
        },
        other => return Err(bad(format!("unknown document kind {other:?}"))),
    };
    if fields.next().is_some() {
        return Err(bad("extra header fields"));
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_protocol::Notification;

    fn samples() -> Vec<BusMessage> {
        let object: User =
            serde_json::from_str(r#"{"id":"u1","name":"Ann\nLee é","extra":[1,{"a":"\n"}]}"#)
                .unwrap();
        vec![
            BusMessage::Room {
                room: "lobby".into(),
                epoch: "e1".into(),
                offset: 42,
                prefix: r#"{"type":"chat","text":"a\nb é","offset":"#.into(),
            },
            BusMessage::Presence {
                room: "lobby".into(),
                seq: 7,
                member: "n1/s1".into(),
                user: object.clone(),
                users: Some(vec![User::from("bob"), object.clone()]),
                members: 2,
            },
            BusMessage::Presence {
                room: "lobby".into(),
                seq: 8,
                member: "n1/s1".into(),
                user: object,
                users: None,
                members: 1,
            },
            BusMessage::Presence {
                room: "big".into(),
                seq: 9,
                member: "n1/s3".into(),
                user: User::from("zed"),
                users: Some(Vec::new()),
                members: 5000,
            },
            BusMessage::Volatile {
                room: "lobby".into(),
                except: Some("n1/s2".into()),
                frame: Utf8Bytes::from_static("{\"type\":\"typing\"}\n"),
            },
            BusMessage::Volatile {
                room: "lobby".into(),
                except: None,
                frame: Utf8Bytes::from_static("{}"),
            },
            BusMessage::Private {
                target: "zoë\nwith a newline".into(),
                frame: Utf8Bytes::from_static("{\"type\":\"private_message\"}"),
            },
            BusMessage::Direct {
                room: "lobby".into(),
                member: "n1/s2".into(),
                frame: Utf8Bytes::from_static("{\"type\":\"offer\",\"sdp\":\"v=0\\r\\n\"}\n"),
            },
            BusMessage::Ordered {
                capability: "streams".into(),
                body: "{\"op\":\"points\"}\nsecond line".into(),
            },
            BusMessage::Event {
                id: 9,
                event: Event::Notification(Notification {
                    id: "n".into(),
                    user_id: None,
                    message: "hi".into(),
                    kind: "info".into(),
                    timestamp: "2026-01-01T00:00:00.000Z".into(),
                }),
            },
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for message in samples() {
            let encoded = encode(&message);
            assert_eq!(decode(encoded.as_bytes()), Ok(message), "{encoded}");
        }
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        let cases: Vec<&[u8]> = vec![
            b"",
            b"\xff\xfe",
            "é".as_bytes(),
            "éé\nx".as_bytes(),
            b"h1",
            b"h1 R\n",
            b"h1 R room epoch notanumber\nx",
            b"h2 R room e 1\nx",
            b"h1 Z\n",
            b"h1 U 99\nshort",
            "h1 U 1\né".as_bytes(),
            b"h1 P room 1 m * 1\n\"u\"",
            b"h1 P room 1 m + 1\nnot json",
            b"h1 P room 1 m + many\n\"u\"",
            b"h1 S 1\n{",
            b"h1 R room e 1 extra\nx",
            b"R\nold format",
            b"h1 D lobby\n{}",
            b"h1 D\n{}",
            b"h1 D lobby n1/s1 extra\n{}",
        ];
        for case in cases {
            assert!(decode(case).is_err(), "{:?}", String::from_utf8_lossy(case));
        }
    }

    #[test]
    fn document_messages_round_trip_and_garbage_is_refused() {
        let samples = [
            DocBusMessage::Op {
                doc: "notes".into(),
                version: 12,
                member: "n1/s1".into(),
                seq: 3,
                frame: Utf8Bytes::from_static(
                    "{\"type\":\"doc_op\",\"op\":[{\"insert\":\"a\\nb 👍\"}]}",
                ),
            },
            DocBusMessage::Frame {
                doc: "notes".into(),
                except: Some("n1/s2".into()),
                frame: Utf8Bytes::from_static("{}\n"),
            },
            DocBusMessage::Frame {
                doc: "notes".into(),
                except: None,
                frame: Utf8Bytes::from_static("{}"),
            },
            DocBusMessage::To {
                doc: "notes".into(),
                member: "n2/s9".into(),
                frame: Utf8Bytes::from_static("{\"type\":\"doc_ack\"}"),
            },
        ];
        for message in samples {
            let encoded = encode_doc(&message);
            assert_eq!(decode_doc(encoded.as_bytes()), Ok(message), "{encoded}");
        }
        for case in [
            &b"h1 O notes x n1/s1 1\n{}"[..],
            b"h1 O notes 1 n1/s1\n{}",
            b"h1 K notes\n{}",
            b"h1 K notes - extra\n{}",
            b"h1 A notes\n{}",
            b"h1 R room e 1\nx",
            b"h2 O notes 1 m 1\n{}",
            b"\xff",
        ] {
            assert!(
                decode_doc(case).is_err(),
                "{:?}",
                String::from_utf8_lossy(case)
            );
        }
    }
}
