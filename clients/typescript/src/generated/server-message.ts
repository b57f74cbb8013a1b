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
type: "error"
/**
 * A human-readable text. The chapter's texts (`Invalid message format`,
 * `Unknown message type`, `Not in a room`) are kept word for word.
 */
message: string
/**
 * A stable, machine-readable code.
 */
code: ("invalid_format" | "unknown_type" | "invalid_message" | "not_in_room" | "user_not_found" | "rate_limited" | "forbidden" | "unauthorized" | "invalid_json" | "invalid_request" | "payload_too_large" | "not_found" | "method_not_allowed" | "unsupported_media_type" | "overloaded" | "origin_not_allowed" | "internal" | "peer_not_found" | "unknown_session" | "overlapping_request")
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
