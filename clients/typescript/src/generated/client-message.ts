// Generated from schemas/client-message.schema.json by clients/typescript/scripts/gen-types.mjs (`npm run gen`); do not edit.

/**
 * A frame from client to server, tagged by `type`.
 */
export type ClientMessage = ({
type: "join"
/**
 * The room to join.
 */
room: string
/**
 * Who is joining. With authentication on, the server takes the identity from the token
 * instead.
 */
user: (string | UserObject)
/**
 * Capability `recovery`: the last position this client saw in the room, to receive what
 * it missed. Send it only to a server whose `welcome` lists `recovery`.
 */
since?: (StreamPosition | null)
/**
 * Capability `presence-diff`: `diff` to receive `presence_diff` frames (only who joined
 * or left) instead of `user_joined`/`user_left` with the whole member list. Absent or
 * `full`: the core frames.
 */
presence?: (PresenceMode | null)
} | {
type: "leave"
} | {
type: "chat"
/**
 * The message text. HTML is sanitised: only `b`, `i`, `em` and `strong` survive, without
 * attributes. Its length is bounded only by the frame limit.
 */
text: string
} | {
type: "typing"
/**
 * `true` while the user types, `false` when they stop.
 */
isTyping: boolean
} | {
type: "private_message"
/**
 * The id of the user to reach.
 */
target: string
/**
 * The message text, sanitised like chat text; bounded only by the frame limit.
 */
text: string
} | {
type: "ping"
} | {
type: "presence"
} | {
type: "peers"
} | {
type: "offer"
/**
 * The peer id (`clientId`) of the member to reach.
 */
to: string
/**
 * The SDP of the offer.
 */
sdp: string
} | {
type: "answer"
/**
 * The peer id (`clientId`) of the member to reach.
 */
to: string
/**
 * The SDP of the answer.
 */
sdp: string
} | {
type: "ice_candidate"
/**
 * The peer id (`clientId`) of the member to reach.
 */
to: string
/**
 * The candidate, or `null` for the end of candidates (never absent).
 */
candidate: (IceCandidate | null)
} | {
type: "hangup"
/**
 * The peer id (`clientId`) of the member to reach.
 */
to: string
} | {
type: "doc_open"
/**
 * The document.
 */
doc: string
/**
 * The version this client already has (after a reconnection): the answer lists the
 * operations committed since, or, when they are no longer all kept, the whole text
 * (all or nothing).
 */
since?: (number | null)
} | {
type: "doc_op"
/**
 * The document.
 */
doc: string
/**
 * The client's own id, the same across reconnections.
 */
client: string
/**
 * The client's sequence number for this operation: each new operation takes a larger
 * one; a resend keeps it and is applied at most once.
 */
seq: number
/**
 * The version the operation was made against.
 */
base: number
op: Op
} | {
type: "doc_cursor"
/**
 * The document.
 */
doc: string
/**
 * The version the positions refer to.
 */
version: number
/**
 * The cursor or selection, or `null` to hide it.
 */
cursor?: (Selection | null)
} | {
type: "doc_close"
/**
 * The document.
 */
doc: string
} | {
type: "stream_subscribe"
/**
 * The stream.
 */
stream: string
/**
 * Most points in the snapshot (downsampled with LTTB, first and last kept); 1,000 when
 * absent.
 */
maxPoints?: (number | null)
/**
 * The last position seen in this stream (`offset` of the last message, `epoch` from
 * `stream_subscribed`), to resume: every missed message follows, or `recovered: false`
 * and a fresh snapshot.
 */
since?: (StreamPosition | null)
/**
 * Most `stream_point` frames per second; points in between are conflated (the latest
 * is sent, with `conflated`). Every point is sent when absent.
 */
maxRate?: (number | null)
} | {
type: "stream_unsubscribe"
/**
 * The stream.
 */
stream: string
})
/**
 * How a member hears of other members joining and leaving.
 */
export type PresenceMode = ("full" | "diff")
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
 * The operation (positions in code points).
 * 
 * @maxItems 1024
 */
export type Op = Component[]

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
 * A position in a room's message stream: the offset of the last message seen and the epoch of
 * the stream it belongs to. Offsets from another epoch cannot be resumed.
 */
export interface StreamPosition {
/**
 * The offset of the last message the client saw (0 when it saw none).
 */
offset: number
/**
 * The epoch of the room's stream, from `room_joined`.
 */
epoch: string
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
