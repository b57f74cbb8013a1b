// Generated from schemas/topic-room-message.schema.json by clients/typescript/scripts/gen-types.mjs (`npm run gen`); do not edit.

/**
 * A user: either a plain name (`"JohnDoe"`), which is also the user's id, or an object with an
 * `id` and a `name`.
 */
export type User = (string | UserObject)

/**
 * Payload of the `room.messages` topic: delivered to the room's members on every node as a
 * `chat` frame, with an id, a timestamp and the room's next offset (so it is kept in history
 * and recovered like any chat). Exactly one node handles each payload.
 */
export interface RoomMessage {
/**
 * The room.
 */
room: string
/**
 * The text; sanitised like a member's chat.
 */
text: string
/**
 * Who the message is from; `"system"` when absent.
 */
user?: (User | null)
}
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
