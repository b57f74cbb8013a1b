//! The Lua scripts the Redis broker runs. Each runs atomically in Redis, so the offset a message
//! gets, its place in history and its place on the bus are one step, and every node sees the
//! bus in one order. Scripts handle keys, numbers and opaque payloads only: every body they
//! publish was encoded by a node, and the headers they write follow [`super::bus`].
//!
//! Keys, under the cluster prefix `P` (passed as `ARGV[1]`; the key names are built in the
//! scripts, so this is for one Redis server, not Redis Cluster):
//! - `P:room:R:epoch`, `P:room:R:offset`: room R's stream position; they expire after a day
//!   without a message or a join (the next message then starts a new epoch).
//! - `P:room:R:history`: a stream of `{o: offset, f: frame prefix}`, trimmed by count and age,
//!   expiring with its newest entry.
//! - `P:room:R:members` (sorted set, score = join order), `P:room:R:users` (hash), `P:room:R:seq`
//!   (join order) and `P:room:R:pseq` (presence sequence): presence, keyed by member
//!   `NODE/SESSION`; deleted when the last member leaves.
//! - `P:room:R:peers` (hash SESSION → `NODE/SESSION`): which member a session id is, so a
//!   direct frame (signaling) addressed by session id finds its node; kept with the members.
//! - `P:user:U` (hash `NODE/SESSION` → `w` or `s`): where user U is connected (Redis drops the
//!   key when its last field goes).
//! - `P:nodes` (set), `P:node:N:alive` (expiring), `P:node:N:rooms` and `P:node:N:users` (hashes
//!   of room or user id → how many of the node's sessions are there): the nodes, their
//!   heartbeats, and what to clean when one dies.
//! - `P:sse:offset`: the event ids.
//!
//! Channels ([`super::bus`] messages): `P:room:R:bus` carries room R's messages, presence,
//! volatile and direct frames, and only nodes with a member in R subscribe to it
//! ([`super::interest`]); `P:user:U:bus` carries user U's private messages, for nodes with a
//! WebSocket of U; `P:bus`, which every node reads, carries the events (notifications and
//! updates).

/// Shared helpers: presence announcements and removing a member.
const PRESENCE: &str = r#"
local function announce(p, room, member, change, body)
  local base = p .. ':room:' .. room
  local seq = redis.call('INCR', base .. ':pseq')
  local size = redis.call('ZCARD', base .. ':members')
  redis.call('PUBLISH', base .. ':bus', 'h1 P ' .. room .. ' ' .. seq .. ' ' .. member .. ' ' .. change .. ' ' .. size .. '\n' .. body)
  return seq
end
local function member_list(base)
  local list = {}
  for i, k in ipairs(redis.call('ZRANGE', base .. ':members', 0, -1)) do
    list[i] = redis.call('HGET', base .. ':users', k) or 'null'
  end
  return list
end
local function node_of(member)
  return string.match(member, '^(.*)/')
end
local function session_of(member)
  return string.match(member, '/([^/]*)$')
end
-- Removes a member; announces it and cleans the room's presence keys when it was the last.
local function remove_member(p, room, member)
  local base = p .. ':room:' .. room
  local user = redis.call('HGET', base .. ':users', member)
  if redis.call('ZREM', base .. ':members', member) == 0 then return 0 end
  redis.call('HDEL', base .. ':users', member)
  local sid = session_of(member)
  if sid and redis.call('HGET', base .. ':peers', sid) == member then
    redis.call('HDEL', base .. ':peers', sid)
  end
  local node = node_of(member)
  if node then
    local rooms = p .. ':node:' .. node .. ':rooms'
    if redis.call('HINCRBY', rooms, room, -1) <= 0 then redis.call('HDEL', rooms, room) end
  end
  announce(p, room, member, '-', user or 'null')
  if redis.call('ZCARD', base .. ':members') == 0 then
    redis.call('DEL', base .. ':members', base .. ':users', base .. ':seq', base .. ':pseq',
      base .. ':peers')
  end
  return 1
end
local function add_member(p, room, member, user)
  local base = p .. ':room:' .. room
  local added = false
  if redis.call('ZSCORE', base .. ':members', member) == false then
    redis.call('ZADD', base .. ':members', redis.call('INCR', base .. ':seq'), member)
    local node = node_of(member)
    if node then redis.call('HINCRBY', p .. ':node:' .. node .. ':rooms', room, 1) end
    added = true
  end
  redis.call('HSET', base .. ':users', member, user)
  local sid = session_of(member)
  if sid then redis.call('HSET', base .. ':peers', sid, member) end
  return added
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Every message of the room after `since` (offset, prefix, offset, prefix...) when the stream
-- is at `offset` and its history (lifetime `ttl` ms, newest `size` entries) still holds them
-- all; `nil` when some are gone.
local function replay_after(base, since, offset, ttl, size)
  local replay = {}
  if since == offset then return replay end
  redis.call('XTRIM', base .. ':history', 'MINID', now_ms() - ttl)
  -- The chat script trims by count approximately: only the newest `size` entries are the
  -- room's history.
  local newest = redis.call('XREVRANGE', base .. ':history', '+', '-', 'COUNT', size)
  local first = nil
  for i = #newest, 1, -1 do
    local e = newest[i]
    local o = tonumber(e[2][2])
    if first == nil then first = o end
    if o > since then
      table.insert(replay, e[2][2])
      table.insert(replay, e[2][4])
    end
  end
  if first == nil or first > since + 1 then return nil end
  return replay
end
"#;

/// How long a silent room keeps its stream position, in seconds.
pub const POSITION_TTL_SECS: u64 = 86_400;

pub(super) fn with_presence(body: &str) -> String {
    format!("{PRESENCE}\nlocal POSITION_TTL = {POSITION_TTL_SECS}\n{body}")
}

/// `ARGV`: prefix, room, member, user JSON, since epoch (empty for none), since offset, history
/// lifetime in ms, a new epoch in case the room has none, the largest room whose presence
/// announcements carry the member list, the history size.
/// Returns `{epoch, offset, users (one JSON per line), recovered ("", "0" or "1"), replay
/// (offset, prefix, offset, prefix...), presence sequence}`.
pub fn join() -> String {
    with_presence(
        r#"
local p, room, member, user = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local base = p .. ':room:' .. room
redis.call('SET', base .. ':epoch', ARGV[8], 'NX')
redis.call('EXPIRE', base .. ':epoch', POSITION_TTL)
local epoch = redis.call('GET', base .. ':epoch')
local offset = tonumber(redis.call('GET', base .. ':offset') or '0')
add_member(p, room, member, user)
local users = table.concat(member_list(base), '\n')
local recovered = ''
local replay = {}
if ARGV[5] ~= '' then
  local since = tonumber(ARGV[6])
  local ok = (ARGV[5] == epoch) and since ~= nil and since <= offset
  if ok then
    replay = replay_after(base, since, offset, tonumber(ARGV[7]), tonumber(ARGV[10]))
    ok = replay ~= nil
    replay = replay or {}
  end
  recovered = ok and '1' or '0'
end
local body = user
if redis.call('ZCARD', base .. ':members') <= tonumber(ARGV[9]) then body = user .. '\n' .. users end
local seq = announce(p, room, member, '+', body)
return {epoch, offset, users, recovered, replay, seq}
"#,
    )
}

/// `ARGV`: prefix, room, stored epoch of the position (`-` for none), its offset, history
/// lifetime in ms, the history size, a new epoch in case the room has none. Where the room's
/// stream is, and what followed the position when history still holds all of it. Returns
/// `{epoch, offset, recovered ("0" or "1"), replay (offset, prefix, offset, prefix...)}`.
pub fn catch_up() -> String {
    with_presence(
        r#"
local p, room = ARGV[1], ARGV[2]
local base = p .. ':room:' .. room
redis.call('SET', base .. ':epoch', ARGV[7], 'NX')
redis.call('EXPIRE', base .. ':epoch', POSITION_TTL)
local epoch = redis.call('GET', base .. ':epoch')
local offset = tonumber(redis.call('GET', base .. ':offset') or '0')
local since = tonumber(ARGV[4])
local replay = nil
if ARGV[3] == epoch and since ~= nil and since <= offset then
  replay = replay_after(base, since, offset, tonumber(ARGV[5]), tonumber(ARGV[6]))
end
return {epoch, offset, replay and '1' or '0', replay or {}}
"#,
    )
}

/// `ARGV`: prefix, room, member. Removes the member and tells the room; returns 1 when it was
/// there.
pub fn leave() -> String {
    with_presence(
        r#"
return remove_member(ARGV[1], ARGV[2], ARGV[3])
"#,
    )
}

/// `ARGV`: prefix, room. Returns the room's members' users, one JSON per line, in join order.
pub fn members() -> String {
    with_presence(
        r#"
return table.concat(member_list(ARGV[1] .. ':room:' .. ARGV[2]), '\n')
"#,
    )
}

/// `ARGV`: prefix, history size, history lifetime in ms, then for each message (one or more, in
/// order): room, frame prefix (the frame up to its offset), a new epoch in case the room has
/// none. Numbers, stores and publishes each message; returns how many. Consecutive chats of a
/// batch share one call, so the cost of running a script is paid once per batch, not per chat.
pub const CHAT: &str = r#"
local p, size, ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3]
for i = 4, #ARGV - 2, 3 do
  local room, body = ARGV[i], ARGV[i + 1]
  local base = p .. ':room:' .. room
  local epoch = redis.call('GET', base .. ':epoch')
  if not epoch then
    epoch = ARGV[i + 2]
    redis.call('SET', base .. ':epoch', epoch)
  end
  local o = redis.call('INCR', base .. ':offset')
  if size > 0 then
    -- Trimmed by count approximately (whole stream nodes at a time, far cheaper than exact), so
    -- it may hold a few more than `size`: the join script reads only the newest `size` and
    -- trims by age itself. The stream expires with its newest entry.
    redis.call('XADD', base .. ':history', 'MAXLEN', '~', size, '*', 'o', o, 'f', body)
    redis.call('PEXPIRE', base .. ':history', ttl)
  end
  -- A room silent for a day forgets its position (the next message starts a new epoch).
  redis.call('EXPIRE', base .. ':epoch', 86400)
  redis.call('EXPIRE', base .. ':offset', 86400)
  redis.call('PUBLISH', base .. ':bus', 'h1 R ' .. room .. ' ' .. epoch .. ' ' .. o .. '\n' .. body)
end
return (#ARGV - 3) / 3
"#;

/// `ARGV`: prefix, user id, bus message. Publishes the (private) message when the user has a
/// WebSocket on a live node; returns how many such connections there are.
pub const PRIVATE: &str = r#"
local p, target = ARGV[1], ARGV[2]
local h = redis.call('HGETALL', p .. ':user:' .. target)
local n = 0
for i = 1, #h, 2 do
  if h[i + 1] == 'w' then
    local node = string.match(h[i], '^(.*)/')
    if node and redis.call('EXISTS', p .. ':node:' .. node .. ':alive') == 1 then n = n + 1 end
  end
end
if n > 0 then
  redis.call('PUBLISH', p .. ':user:' .. target .. ':bus', ARGV[3])
end
return n
"#;

/// `ARGV`: prefix, room, target session id, encoded frame. Publishes the frame for the member
/// that session is when it is in the room and its node is alive (bus kind `D`); returns 1 when
/// published, 0 when the target is not there.
pub const DIRECT: &str = r#"
local p, room, target = ARGV[1], ARGV[2], ARGV[3]
local base = p .. ':room:' .. room
local member = redis.call('HGET', base .. ':peers', target)
if not member or redis.call('ZSCORE', base .. ':members', member) == false then return 0 end
local node = string.match(member, '^(.*)/')
if not node or redis.call('EXISTS', p .. ':node:' .. node .. ':alive') == 0 then return 0 end
redis.call('PUBLISH', base .. ':bus', 'h1 D ' .. room .. ' ' .. member .. '\n' .. ARGV[4])
return 1
"#;

/// `ARGV`: prefix, room. Returns the room's members in join order as a flat list: member
/// (`NODE/SESSION`), user JSON, member, user JSON...
pub const ROSTER: &str = r#"
local base = ARGV[1] .. ':room:' .. ARGV[2]
local out = {}
for _, k in ipairs(redis.call('ZRANGE', base .. ':members', 0, -1)) do
  table.insert(out, k)
  table.insert(out, redis.call('HGET', base .. ':users', k) or 'null')
end
return out
"#;

/// `ARGV`: prefix, event JSON. Gives the event the cluster's next id and publishes it; returns
/// the id.
pub const EVENT: &str = r#"
local p = ARGV[1]
local id = redis.call('INCR', p .. ':sse:offset')
redis.call('PUBLISH', p .. ':bus', 'h1 S ' .. id .. '\n' .. ARGV[2])
return id
"#;

/// `ARGV`: prefix, node, user id, member, transport (`w` or `s`). Records where a user is.
pub const ONLINE: &str = r#"
local p, node, uid = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HSET', p .. ':user:' .. uid, ARGV[4], ARGV[5]) == 1 then
  redis.call('HINCRBY', p .. ':node:' .. node .. ':users', uid, 1)
end
return 1
"#;

/// `ARGV`: prefix, node, user id, member. Forgets one of a user's connections.
pub const OFFLINE: &str = r#"
local p, node, uid = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HDEL', p .. ':user:' .. uid, ARGV[4]) == 1 then
  local users = p .. ':node:' .. node .. ':users'
  if redis.call('HINCRBY', users, uid, -1) <= 0 then redis.call('HDEL', users, uid) end
end
return 1
"#;

/// `ARGV`: prefix, node, heartbeat lifetime in ms. Renews the node's heartbeat and its claim to
/// lead (the leader handles the backend topics); returns 1 when it leads.
pub const HEARTBEAT: &str = r#"
local p, node, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
redis.call('SET', p .. ':node:' .. node .. ':alive', '1', 'PX', ttl)
redis.call('SADD', p .. ':nodes', node)
local leader = p .. ':leader'
if redis.call('SET', leader, node, 'PX', ttl, 'NX') then return 1 end
if redis.call('GET', leader) == node then
  redis.call('PEXPIRE', leader, ttl)
  return 1
end
return 0
"#;

/// The part shared by REAP and RESYNC.
const DROP: &str = r#"
-- Removes node n's members from room `room` except those in `keep`, announcing each.
local function drop_members(p, n, room, keep)
  local prefix = n .. '/'
  for _, k in ipairs(redis.call('ZRANGE', p .. ':room:' .. room .. ':members', 0, -1)) do
    if string.sub(k, 1, #prefix) == prefix and not keep[k] then
      remove_member(p, room, k)
    end
  end
end
-- Forgets where node n's users are connected.
local function drop_users(p, n)
  local prefix = n .. '/'
  for _, uid in ipairs(redis.call('HKEYS', p .. ':node:' .. n .. ':users')) do
    local key = p .. ':user:' .. uid
    for _, f in ipairs(redis.call('HKEYS', key)) do
      if string.sub(f, 1, #prefix) == prefix then redis.call('HDEL', key, f) end
    end
  end
  redis.call('DEL', p .. ':node:' .. n .. ':users')
end
"#;

/// `ARGV`: prefix, node to remove (empty: every node whose heartbeat expired). Removes the dead
/// nodes' members from presence, telling each room; returns how many nodes were removed.
pub fn reap() -> String {
    with_presence(&format!(
        "{DROP}{}",
        r#"
local p, only = ARGV[1], ARGV[2]
local nodes = redis.call('SMEMBERS', p .. ':nodes')
if only ~= '' then nodes = {only} end
local reaped = 0
for _, n in ipairs(nodes) do
  if only ~= '' or redis.call('EXISTS', p .. ':node:' .. n .. ':alive') == 0 then
    for _, room in ipairs(redis.call('HKEYS', p .. ':node:' .. n .. ':rooms')) do
      drop_members(p, n, room, {})
    end
    drop_users(p, n)
    redis.call('DEL', p .. ':node:' .. n .. ':rooms', p .. ':node:' .. n .. ':alive')
    redis.call('SREM', p .. ':nodes', n)
    if redis.call('GET', p .. ':leader') == n then redis.call('DEL', p .. ':leader') end
    reaped = reaped + 1
  end
end
return reaped
"#
    ))
}

/// `ARGV`: prefix, node, member count M, then M × (room, member, user JSON), then user count U,
/// then U × (user id, member, `w` or `s`). Makes Redis hold exactly this node's members and users
/// (after a reconnect): members gone meanwhile are announced as left, members Redis lost are
/// announced as joined.
pub fn resync() -> String {
    with_presence(&format!(
        "{DROP}{}",
        r#"
local p, n = ARGV[1], ARGV[2]
local m = tonumber(ARGV[3])
local keep = {}
for i = 0, m - 1 do
  keep[ARGV[5 + i * 3]] = true
end
for _, room in ipairs(redis.call('HKEYS', p .. ':node:' .. n .. ':rooms')) do
  drop_members(p, n, room, keep)
end
for i = 0, m - 1 do
  local room, member, user = ARGV[4 + i * 3], ARGV[5 + i * 3], ARGV[6 + i * 3]
  if add_member(p, room, member, user) then
    local base = p .. ':room:' .. room
    announce(p, room, member, '+', user .. '\n' .. table.concat(member_list(base), '\n'))
  end
end
drop_users(p, n)
local base = 4 + m * 3
local u = tonumber(ARGV[base])
for i = 0, u - 1 do
  local uid, member, t = ARGV[base + 1 + i * 3], ARGV[base + 2 + i * 3], ARGV[base + 3 + i * 3]
  if redis.call('HSET', p .. ':user:' .. uid, member, t) == 1 then
    redis.call('HINCRBY', p .. ':node:' .. n .. ':users', uid, 1)
  end
end
return m
"#
    ))
}
