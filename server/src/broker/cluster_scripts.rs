//! The Lua scripts of the Redis Cluster broker ([`super::redis_cluster`]).
//!
//! Redis Cluster runs a script on the shard holding its keys, and every key a script touches
//! must be in one hash slot. So on the cluster:
//! - a room's keys and channel carry the room as a hash tag: `P:room:{R}:epoch`,
//!   `P:room:{R}:bus`... (room names cannot hold braces); a user's key and channel carry the
//!   user id, with `%`, `{` and `}` written `%25`, `%7B`, `%7D`, as the tag: `P:user:{U}`,
//!   `P:user:{U}:bus` ([`user_tag`]);
//! - room and user traffic goes over sharded pub/sub (`SPUBLISH`), so it stays on its shard;
//!   events every node reads stay on `P:bus` (plain `PUBLISH`, which the cluster broadcasts);
//! - the node-wide parts of the single-server scripts move to the node: each node keeps its own
//!   index of the rooms and users it has sessions in (`P:node:{N}:rooms`, `P:node:{N}:users`,
//!   sets, updated around each batch), the heartbeats and the leader are in one slot
//!   (`P:{nodes}:alive`, a sorted set of node → deadline in ms, and `P:{nodes}:leader`), and the
//!   node-alive checks of private and direct messages take the dead nodes the node last found
//!   (at its last reaping round) as arguments. Reaping a dead node and resyncing after a reconnect are
//!   done room by room and user by user, one script per slot.
//!
//! The room scripts (join, leave, members, chat, roster, dropping a node's members) are the
//! single-server ones of [`super::scripts`] with the key names tagged, `PUBLISH` made `SPUBLISH`
//! and the node index left out ([`for_cluster`]); the tests below check that nothing untagged
//! or cross-slot is left in them. Every call names one key of its slot (`EVALSHA sha 1 KEY`) so
//! the cluster client routes it. Layer 3.

use super::scripts;

/// A user id as a hash tag: no brace (which would end the tag) and no ambiguity.
pub fn user_tag(user_id: &str) -> String {
    let mut out = String::with_capacity(user_id.len());
    for c in user_id.chars() {
        match c {
            '%' => out.push_str("%25"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            c => out.push(c),
        }
    }
    out
}

/// Rewrites a single-server room script for the cluster (see the module docs).
pub fn for_cluster(script: &str) -> String {
    let rewrites: [(&str, &str); 6] = [
        ("':room:' .. room", "':room:{' .. room .. '}'"),
        ("':room:' .. ARGV[2]", "':room:{' .. ARGV[2] .. '}'"),
        (
            "redis.call('PUBLISH', base .. ':bus'",
            "redis.call('SPUBLISH', base .. ':bus'",
        ),
        (
            "if node then redis.call('HINCRBY', p .. ':node:' .. node .. ':rooms', room, 1) end",
            "",
        ),
        (
            "local rooms = p .. ':node:' .. node .. ':rooms'",
            "",
        ),
        (
            "if redis.call('HINCRBY', rooms, room, -1) <= 0 then redis.call('HDEL', rooms, room) end",
            "",
        ),
    ];
    let mut out = script.to_owned();
    for (from, to) in rewrites {
        out = out.replace(from, to);
    }
    out
}

/// `KEYS[1]`: the room's base key. `ARGV`: as [`scripts::join`].
pub fn join() -> String {
    for_cluster(&scripts::join())
}

/// As [`scripts::leave`].
pub fn leave() -> String {
    for_cluster(&scripts::leave())
}

/// As [`scripts::members`].
pub fn members() -> String {
    for_cluster(&scripts::members())
}

/// As [`scripts::CHAT`]; every room of one call is in one slot.
pub fn chat() -> String {
    for_cluster(scripts::CHAT)
}

/// As [`scripts::catch_up`].
pub fn catch_up() -> String {
    for_cluster(&scripts::catch_up())
}

/// As [`scripts::ROSTER`].
pub fn roster() -> String {
    for_cluster(scripts::ROSTER)
}

/// Removes node n's members from a room except those in `keep`, announcing each (the room half
/// of the single-server scripts' `DROP`; the user half is [`RESYNC_USER`]).
const DROP_MEMBERS: &str = r#"
local function drop_members(p, n, room, keep)
  local prefix = n .. '/'
  for _, k in ipairs(redis.call('ZRANGE', p .. ':room:' .. room .. ':members', 0, -1)) do
    if string.sub(k, 1, #prefix) == prefix and not keep[k] then
      remove_member(p, room, k)
    end
  end
end
"#;

/// `ARGV`: prefix, node, room, then the members of that node to keep. Removes the node's other
/// members from the room, announcing each (reaping a dead node: none kept).
pub fn drop_room() -> String {
    for_cluster(&scripts::with_presence(&format!(
        "{}{}",
        DROP_MEMBERS,
        r#"
local keep = {}
for i = 4, #ARGV do keep[ARGV[i]] = true end
drop_members(ARGV[1], ARGV[2], ARGV[3], keep)
return 1
"#
    )))
}

/// `ARGV`: prefix, node, room, then pairs (member, user JSON): this node's members of the room.
/// Makes the room hold exactly those of the node's members: the others are announced as left,
/// the ones the room lost as joined (after a reconnect).
pub fn resync_room() -> String {
    for_cluster(&scripts::with_presence(&format!(
        "{}{}",
        DROP_MEMBERS,
        r#"
local p, n, room = ARGV[1], ARGV[2], ARGV[3]
local keep = {}
for i = 4, #ARGV - 1, 2 do keep[ARGV[i]] = true end
drop_members(p, n, room, keep)
for i = 4, #ARGV - 1, 2 do
  local member, user = ARGV[i], ARGV[i + 1]
  if add_member(p, room, member, user) then
    local base = p .. ':room:' .. room
    announce(p, room, member, '+', user .. '\n' .. table.concat(member_list(base), '\n'))
  end
end
return 1
"#
    )))
}

/// `KEYS[1]`, `ARGV[1]`: the user's key; `ARGV[2]`: member; `ARGV[3]`: transport (`w`, `s`).
pub const ONLINE: &str = r#"
redis.call('HSET', ARGV[1], ARGV[2], ARGV[3])
return 1
"#;

/// `KEYS[1]`, `ARGV[1]`: the user's key; `ARGV[2]`: member.
pub const OFFLINE: &str = r#"
redis.call('HDEL', ARGV[1], ARGV[2])
return 1
"#;

/// `KEYS[1]`, `ARGV[1]`: the user's key; `ARGV[2]`: node; then pairs (member, transport): the
/// node's connections of that user. Makes the key hold exactly those of the node's (none: the
/// node is reaped).
pub const RESYNC_USER: &str = r#"
local key, prefix = ARGV[1], ARGV[2] .. '/'
local keep = {}
for i = 3, #ARGV - 1, 2 do keep[ARGV[i]] = ARGV[i + 1] end
for _, f in ipairs(redis.call('HKEYS', key)) do
  if string.sub(f, 1, #prefix) == prefix and not keep[f] then redis.call('HDEL', key, f) end
end
for f, t in pairs(keep) do redis.call('HSET', key, f, t) end
return 1
"#;

/// `KEYS[1]`, `ARGV[1]`: the user's key; `ARGV[2]`: the bus message; then the dead nodes.
/// Publishes the private message on the user's channel when the user has a WebSocket on a node
/// not known dead; returns how many such connections there are.
pub const PRIVATE: &str = r#"
local key = ARGV[1]
local dead = {}
for i = 3, #ARGV do dead[ARGV[i]] = true end
local h = redis.call('HGETALL', key)
local n = 0
for i = 1, #h, 2 do
  if h[i + 1] == 'w' then
    local node = string.match(h[i], '^(.*)/')
    if node and not dead[node] then n = n + 1 end
  end
end
if n > 0 then redis.call('SPUBLISH', key .. ':bus', ARGV[2]) end
return n
"#;

/// `KEYS[1]`, `ARGV[1]`: the room's base key; `ARGV[2]`: room; `ARGV[3]`: target session id;
/// `ARGV[4]`: the frame; then the dead nodes. As [`scripts::DIRECT`].
pub const DIRECT: &str = r#"
local base, room, target = ARGV[1], ARGV[2], ARGV[3]
local dead = {}
for i = 5, #ARGV do dead[ARGV[i]] = true end
local member = redis.call('HGET', base .. ':peers', target)
if not member or redis.call('ZSCORE', base .. ':members', member) == false then return 0 end
local node = string.match(member, '^(.*)/')
if not node or dead[node] then return 0 end
redis.call('SPUBLISH', base .. ':bus', 'h1 D ' .. room .. ' ' .. member .. '\n' .. ARGV[4])
return 1
"#;

/// `KEYS[1]`: `P:{nodes}:alive`. `ARGV`: `P:{nodes}`, node, heartbeat lifetime in ms. Renews
/// the node's heartbeat and its claim to lead; returns 1 when it leads.
pub const HEARTBEAT: &str = r#"
local nodes, node, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', nodes .. ':alive', now + ttl, node)
local leader = nodes .. ':leader'
local leads = 0
if redis.call('SET', leader, node, 'PX', ttl, 'NX') then
  leads = 1
elseif redis.call('GET', leader) == node then
  redis.call('PEXPIRE', leader, ttl)
  leads = 1
end
return leads
"#;

/// `KEYS[1]`: `P:{nodes}:alive`. `ARGV`: `P:{nodes}`. The nodes whose heartbeat expired.
pub const DEAD: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', ARGV[1] .. ':alive', '-inf', '(' .. now)
"#;

/// `KEYS[1]`: `P:{nodes}:alive`. `ARGV`: `P:{nodes}`, node. Forgets a node once it is reaped.
pub const FORGET: &str = r#"
redis.call('ZREM', ARGV[1] .. ':alive', ARGV[2])
if redis.call('GET', ARGV[1] .. ':leader') == ARGV[2] then redis.call('DEL', ARGV[1] .. ':leader') end
return 1
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_tags_hold_no_brace_and_are_unambiguous() {
        assert_eq!(user_tag("ann"), "ann");
        assert_eq!(user_tag("{x}"), "%7Bx%7D");
        assert_eq!(user_tag("%7B"), "%257B");
        assert_ne!(user_tag("{"), user_tag("%7B"));
    }

    #[test]
    fn room_scripts_touch_only_their_slot() {
        for (name, script) in [
            ("join", join()),
            ("leave", leave()),
            ("members", members()),
            ("chat", chat()),
            ("roster", roster()),
            ("drop_room", drop_room()),
            ("resync_room", resync_room()),
            ("catch_up", catch_up()),
        ] {
            assert!(!script.contains(":node:"), "{name} touches the node index");
            assert!(!script.contains("'PUBLISH'"), "{name} publishes unsharded");
            assert!(
                !script.contains("':room:' .."),
                "{name} builds an untagged room key"
            );
            assert!(script.contains("':room:{'"), "{name} names no room key");
        }
        assert!(chat().contains("SPUBLISH"));
        assert!(join().contains("SPUBLISH"));
    }
}
