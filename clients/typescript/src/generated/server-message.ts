// Generated from schemas/server-message.schema.json by clients/typescript/scripts/gen-types.mjs (`npm run gen`); do not edit.

/**
 * A frame from server to client, tagged by `type`.
 */
export type ServerMessage = ({
type: "welcome"
/**
 * This connection's id.
 */
clientId: string
/**
 * The protocol version the server speaks, such as `1.1` (see `protocol/CHANGELOG.md`).
 * Absent on a server that speaks only the core; chapter clients ignore it.
 */
protocol?: string
/**
 * The names of the capabilities the server guarantees on this connection (`recovery`,
 * `offsets`, `room-in-presence`, `app-ping`, `auth`, ...). Absent or empty: the server
 * speaks only the core. Names a client does not know are to be ignored.
 */
capabilities?: string[]
} | {
type: "room_joined"
/**
 * The room joined.
 */
room: string
/**
 * Every member of the room, the joiner included, each as they described themselves.
 */
users: User[]
/**
 * Capability `recovery`: the epoch of the room's message stream; offsets are comparable
 * only within one epoch, and a client resumes with it in `join`'s `since`.
 */
epoch?: (string | null)
/**
 * Capability `offsets`: the offset of the room's latest message (0 when it has none).
 */
offset?: (number | null)
/**
 * Capability `recovery`: present when the join asked to resume (`since`). `true` when
 * every missed message follows, in order, before live ones; `false` when that was
 * impossible and nothing is replayed (all or nothing).
 */
recovered?: (boolean | null)
} | {
type: "user_joined"
/**
 * A user: either a plain name (`"JohnDoe"`), which is also the user's id, or an object with an
 * `id` and a `name`.
 */
user: (string | UserObject)
/**
 * Every member of the room now.
 */
users: User[]
/**
 * Capability `room-in-presence`: the room.
 */
room?: (RoomName | null)
} | {
type: "room_left"
/**
 * A room's name.
 */
room: string
} | {
type: "user_left"
/**
 * A user: either a plain name (`"JohnDoe"`), which is also the user's id, or an object with an
 * `id` and a `name`.
 */
user: (string | UserObject)
/**
 * Capability `room-in-presence`: the room.
 */
room?: (RoomName | null)
} | {
type: "chat"
/**
 * The message's unique id.
 */
id: string
/**
 * A user: either a plain name (`"JohnDoe"`), which is also the user's id, or an object with an
 * `id` and a `name`.
 */
user: (string | UserObject)
/**
 * The sanitised text.
 */
text: string
/**
 * When the server accepted the message (RFC 3339).
 */
timestamp: string
/**
 * A room's name.
 */
room: string
/**
 * Capability `offsets`: the message's position in the room's stream (1 for the first
 * message of an epoch). Always the last field, so a server may encode the frame once and
 * append each offset.
 */
offset?: (number | null)
} | {
type: "typing"
/**
 * A user: either a plain name (`"JohnDoe"`), which is also the user's id, or an object with an
 * `id` and a `name`.
 */
user: (string | UserObject)
/**
 * Whether they are typing.
 */
isTyping: boolean
/**
 * Capability `room-in-presence`: the room.
 */
room?: (RoomName | null)
} | {
type: "private_message"
/**
 * The message's unique id.
 */
id: string
/**
 * A user: either a plain name (`"JohnDoe"`), which is also the user's id, or an object with an
 * `id` and a `name`.
 */
from: (string | UserObject)
/**
 * The sanitised text.
 */
text: string
/**
 * When the server accepted the message (RFC 3339).
 */
timestamp: string
} | {
type: "notification"
content: Notification
} | {
type: "presence_diff"
/**
 * A room's name.
 */
room: string
/**
 * Members who joined, in order.
 */
joins: User[]
/**
 * Members who left, in order.
 */
leaves: User[]
} | {
type: "presence_state"
/**
 * A room's name.
 */
room: string
/**
 * Every member, in join order.
 */
users: User[]
} | {
type: "pong"
} | {
type: "peers"
/**
 * A room's name.
 */
room: string
/**
 * Every other member of the room (on every node), in join order.
 */
peers: Peer[]
/**
 * The STUN and TURN servers to use (possibly none). TURN servers are listed only with
 * authentication on, with credentials for the token's user, valid for the server's
 * TURN lifetime; fresh ones come from asking again or from `GET /turn-credentials`.
 */
iceServers: IceServer[]
} | {
type: "offer"
/**
 * The sender's peer id, stamped by the server.
 */
from: string
/**
 * A user: either a plain name (`"JohnDoe"`), which is also the user's id, or an object with an
 * `id` and a `name`.
 */
user: (string | UserObject)
/**
 * The SDP of the offer.
 */
sdp: string
/**
 * Whether the receiver is the polite peer of this pair (its peer id sorts first).
 */
polite: boolean
} | {
type: "answer"
/**
 * The sender's peer id, stamped by the server.
 */
from: string
/**
 * The SDP of the answer.
 */
sdp: string
/**
 * Whether the receiver is the polite peer of this pair (its peer id sorts first).
 */
polite: boolean
} | {
type: "ice_candidate"
/**
 * The sender's peer id, stamped by the server.
 */
from: string
/**
 * The candidate, or `null` for the end of candidates (never absent).
 */
candidate: (IceCandidate | null)
/**
 * Whether the receiver is the polite peer of this pair (its peer id sorts first).
 */
polite: boolean
} | {
type: "hangup"
/**
 * The sender's peer id, stamped by the server.
 */
from: string
/**
 * Whether the receiver is the polite peer of this pair (its peer id sorts first).
 */
polite: boolean
} | {
type: "doc_opened"
/**
 * The document.
 */
doc: string
/**
 * The document's version (the number of operations ever committed to it).
 */
version: number
/**
 * The whole text at `version`; absent when `ops` brings the client up to date.
 */
text?: (string | null)
/**
 * With `since`: every operation committed after `since`, in order, up to `version`.
 */
ops?: (CommittedOp[] | null)
/**
 * Present when the open asked for `since`: `true` when `ops` lists every missed
 * operation, `false` when they are gone and `text` is a fresh snapshot instead.
 */
recovered?: (boolean | null)
/**
 * Everyone else who has the document open, with their cursors at `version`.
 */
participants: Participant[]
} | {
type: "doc_ack"
/**
 * The document.
 */
doc: string
/**
 * The operation's sequence number (with this connection's client id).
 */
seq: number
/**
 * The version the document reached with it. A resend of an operation already
 * committed is acknowledged again with the version of its first commit.
 */
version: number
} | {
type: "doc_op"
/**
 * The document.
 */
doc: string
/**
 * The version the document reached with it.
 */
version: number
op: Op1
/**
 * Its author's client id.
 */
client: string
/**
 * Its author's sequence number.
 */
seq: number
} | {
type: "doc_cursor"
/**
 * The document.
 */
doc: string
/**
 * The participant's connection (its `clientId`).
 */
peer: string
/**
 * The participant's user, when its connection has one.
 */
user?: (User | null)
/**
 * The version the positions refer to.
 */
version: number
/**
 * The cursor or selection, or `null`.
 */
cursor?: (Selection | null)
} | {
type: "doc_joined"
/**
 * The document.
 */
doc: string
/**
 * The participant's connection (its `clientId`).
 */
peer: string
/**
 * The participant's user, when its connection has one.
 */
user?: (User | null)
} | {
type: "doc_left"
/**
 * The document.
 */
doc: string
/**
 * The participant's connection (its `clientId`).
 */
peer: string
} | {
type: "doc_closed"
/**
 * The document.
 */
doc: string
} | {
type: "doc_error"
/**
 * The document.
 */
doc: string
/**
 * The refused operation's sequence number, when an operation was refused.
 */
seq?: (number | null)
/**
 * A stable, machine-readable code.
 */
code: ("invalid_format" | "unknown_type" | "invalid_message" | "not_in_room" | "user_not_found" | "rate_limited" | "forbidden" | "unauthorized" | "invalid_json" | "invalid_request" | "payload_too_large" | "not_found" | "method_not_allowed" | "unsupported_media_type" | "overloaded" | "origin_not_allowed" | "internal" | "peer_not_found" | "doc_not_open" | "doc_too_large" | "op_too_large" | "invalid_op" | "version_unknown" | "too_many_docs" | "stream_not_found" | "stream_conflict" | "subscription_refused" | "unknown_session" | "overlapping_request")
/**
 * A human-readable text.
 */
message: string
} | {
type: "stream_subscribed"
/**
 * The stream.
 */
stream: string
/**
 * The epoch of the stream's messages; a client resumes with it in `since`.
 */
epoch: string
/**
 * The offset of the stream's latest message (0 when it has none).
 */
offset: number
/**
 * Present when the subscription asked to resume (`since`): whether every missed
 * message follows.
 */
recovered?: (boolean | null)
/**
 * The value's field names, for a stream of objects; absent for plain numbers.
 */
fields?: (string[] | null)
/**
 * Recent points, oldest first, downsampled (LTTB) to at most `maxPoints`.
 */
points: StreamPoint[]
/**
 * Recent window results, oldest first.
 */
windows: WindowResult[]
} | {
type: "stream_unsubscribed"
/**
 * The stream.
 */
stream: string
} | {
type: "stream_point"
/**
 * The stream.
 */
stream: string
/**
 * Event time, in milliseconds since the Unix epoch.
 */
timestamp: number
/**
 * The value.
 */
value: (number | {
[k: string]: number | undefined
})
/**
 * For a subscriber with `maxRate`: how many points this frame stands for when more than
 * one (it carries the latest); absent when it is one point.
 */
conflated?: (number | null)
/**
 * The point's position in the stream (the latest folded point's, when conflated).
 */
offset: number
} | {
type: "stream_window"
/**
 * The stream.
 */
stream: string
window: WindowResult1
/**
 * The result's position in the stream.
 */
offset: number
} | {
type: "room_resumed"
/**
 * A room's name.
 */
room: string
/**
 * The epoch of the room's message stream from now on.
 */
epoch: string
/**
 * The room's offset when the server resumed it: with `recovered: true` the missed chats
 * up to it follow first; every chat after it follows in any case.
 */
offset: number
/**
 * Whether every missed chat follows.
 */
recovered: boolean
} | {
type: "error"
/**
 * A human-readable text. The chapter's texts (`Invalid message format`,
 * `Unknown message type`, `Not in a room`) are kept word for word.
 */
message: string
/**
 * A stable, machine-readable code.
 */
code: ("invalid_format" | "unknown_type" | "invalid_message" | "not_in_room" | "user_not_found" | "rate_limited" | "forbidden" | "unauthorized" | "invalid_json" | "invalid_request" | "payload_too_large" | "not_found" | "method_not_allowed" | "unsupported_media_type" | "overloaded" | "origin_not_allowed" | "internal" | "peer_not_found" | "doc_not_open" | "doc_too_large" | "op_too_large" | "invalid_op" | "version_unknown" | "too_many_docs" | "stream_not_found" | "stream_conflict" | "subscription_refused" | "unknown_session" | "overlapping_request")
})
/**
 * A user: either a plain name (`"JohnDoe"`), which is also the user's id, or an object with an
 * `id` and a `name`.
 */
export type User = (string | UserObject)
/**
 * A room's name.
 */
export type RoomName = string
/**
 * A STUN or TURN URL.
 */
export type IceUrl = string
/**
 * One step of an operation, as a one-key object: `{"retain":3}`, `{"insert":"héllo"}` or
 * `{"delete":2}`. Counts are code points.
 */
export type Component = ({
retain: number
} | {
insert: string
} | {
delete: number
})
/**
 * The operation, as applied to the document at `version - 1`.
 * 
 * @maxItems 1024
 */
export type Op = Component[]
/**
 * The operation (positions in code points).
 * 
 * @maxItems 1024
 */
export type Op1 = Component[]

/**
 * A user object; `id` identifies the user, other fields are shown to others as they are.
 */
export interface UserObject {
/**
 * The user's stable id; private messages and notifications are addressed to it.
 */
id: string
/**
 * The name shown to other users.
 */
name: string
/**
 * An optional picture URL.
 */
avatar?: (string | null)
[k: string]: unknown | undefined
}
/**
 * The same object the SSE `notification` event carries.
 */
export interface Notification {
/**
 * The notification's unique id.
 */
id: string
/**
 * The user it is for; absent when it went to everyone.
 */
userId?: (string | null)
/**
 * The text to show.
 */
message: string
/**
 * The kind of notification (`info`, `warning`, ...), as the publisher named it.
 */
type: string
/**
 * When the server accepted it (RFC 3339).
 */
timestamp: string
}
/**
 * A member of the room as a peer, in the `peers` answer.
 */
export interface Peer {
/**
 * Its peer id, to address signals to.
 */
peerId: string
/**
 * A user: either a plain name (`"JohnDoe"`), which is also the user's id, or an object with an
 * `id` and a `name`.
 */
user: (string | UserObject)
/**
 * Whether the connection that asked is the polite peer toward this one.
 */
polite: boolean
}
/**
 * An ICE server, as `RTCPeerConnection`'s `iceServers` takes it. TURN servers come with
 * credentials for the connection's user (see [`TurnCredentials`]); STUN servers without.
 */
export interface IceServer {
/**
 * Its URLs (`stun:`, `stuns:`, `turn:` or `turns:`).
 */
urls: IceUrl[]
/**
 * For TURN: `EXPIRY:USER`, as in [`TurnCredentials`].
 */
username?: (string | null)
/**
 * For TURN: base64 of HMAC-SHA1(secret, username), as in [`TurnCredentials`].
 */
credential?: (string | null)
}
/**
 * One ICE candidate, as `RTCIceCandidate.toJSON()` gives it. An empty `candidate` string is
 * the end of one generation's candidates, as WebRTC itself writes it.
 */
export interface IceCandidate {
/**
 * The candidate line (`candidate:...`), or empty for the end of a generation.
 */
candidate: string
/**
 * The media stream identification tag it belongs to.
 */
sdpMid?: (string | null)
/**
 * The index of the media description it belongs to.
 */
sdpMLineIndex?: (number | null)
/**
 * The ICE username fragment of the generation it belongs to.
 */
usernameFragment?: (string | null)
}
/**
 * A committed operation, as catch-up lists it.
 */
export interface CommittedOp {
/**
 * The version the document reached with it (the first operation makes version 1).
 */
version: number
op: Op
/**
 * Its author's client id.
 */
client: string
/**
 * Its author's sequence number.
 */
seq: number
}
/**
 * Someone who has a document open.
 */
export interface Participant {
/**
 * The participant's connection (its `clientId` from `welcome`).
 */
peer: string
/**
 * The user it is, when the connection has one (from a token, or its room's `join`).
 */
user?: (User | null)
/**
 * Its cursor or selection at the answer's version, if it has shown one and it has not
 * expired.
 */
cursor?: (Selection | null)
}
/**
 * A cursor or a selection: `anchor` where it started, `head` where the caret is (equal for a
 * plain cursor), both code-point positions.
 */
export interface Selection {
/**
 * Where the selection started.
 */
anchor: number
/**
 * Where the caret is.
 */
head: number
}
/**
 * One data point.
 */
export interface StreamPoint {
/**
 * Event time, in milliseconds since the Unix epoch (`new Date(timestamp)` in JavaScript).
 */
timestamp: number
/**
 * The value.
 */
value: (number | {
[k: string]: number | undefined
})
}
/**
 * One closed tumbling window's result.
 */
export interface WindowResult {
/**
 * The window's start (inclusive), in milliseconds since the Unix epoch.
 */
start: number
/**
 * The window's end (exclusive).
 */
end: number
/**
 * Points in the window.
 */
count: number
/**
 * Points that arrived after their own window had closed (later than the grace), since the
 * previous window result; they are in no window's aggregates.
 */
late: number
/**
 * Aggregates per field (`value` for a plain number stream).
 */
fields: {
[k: string]: FieldAggregates | undefined
}
}
/**
 * The aggregates of one field over one window. Only the aggregates the stream asks for are
 * present.
 */
export interface FieldAggregates {
/**
 * Number of points that carried the field.
 */
count?: (number | null)
/**
 * Sum of its values.
 */
sum?: (number | null)
/**
 * Mean of its values.
 */
avg?: (number | null)
/**
 * Smallest value.
 */
min?: (number | null)
/**
 * Largest value.
 */
max?: (number | null)
}
/**
 * One closed tumbling window's result.
 */
export interface WindowResult1 {
/**
 * The window's start (inclusive), in milliseconds since the Unix epoch.
 */
start: number
/**
 * The window's end (exclusive).
 */
end: number
/**
 * Points in the window.
 */
count: number
/**
 * Points that arrived after their own window had closed (later than the grace), since the
 * previous window result; they are in no window's aggregates.
 */
late: number
/**
 * Aggregates per field (`value` for a plain number stream).
 */
fields: {
[k: string]: FieldAggregates | undefined
}
}
