//! The Lua scripts the Redis broker runs. Each runs atomically in Redis, so the offset a message
//! gets, its place in history and its place on the bus are one step, and every node sees the
//! bus in one order.
//!
//! Keys, under the cluster prefix `P` (passed as `ARGV[1]`; the key names are built in the
//! scripts, so this is for one Redis server, not Redis Cluster):
//! - `P:room:R:epoch`, `P:room:R:offset`: room R's stream position.
//! - `P:room:R:history`: a stream of `{o: offset, f: frame}`, trimmed by count and age.
//! - `P:room:R:members` (sorted set, score = join order) and `P:room:R:users` (hash): presence,
//!   keyed by member `NODE/SESSION`.
//! - `P:user:U` (hash `NODE/SESSION` → `w` or `s`): where user U is connected.
//! - `P:nodes` (set), `P:node:N:alive` (expiring), `P:node:N:rooms`, `P:node:N:users` (sets):
//!   the nodes, their heartbeats, and what to clean when one dies.
//! - `P:sse:offset`: the SSE event ids.
//! - `P:bus`: the channel every node reads. Its payloads are lines: `R room epoch offset frame`
//!   (a room message), `V room except frame` (presence and typing, not kept), `U frame user` (a
//!   private message; the user id last, as it may hold any character), `S id kind payload` (a notification `N` or update `E`).

/// `ARGV`: prefix, room, member, user JSON, node, since epoch (empty for none), since offset,
/// history lifetime in ms, a new epoch in case the room has none, quiet (`1`: no announcement,
/// no replay; used when re-registering after a reconnect).
/// Returns `{epoch, offset, users JSON, recovered ("", "0" or "1"), replay frames}`.
pub const JOIN: &str = r#"
local p, room, member, user, node = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local base = p .. ':room:' .. room
redis.call('SET', base .. ':epoch', ARGV[9], 'NX')
local epoch = redis.call('GET', base .. ':epoch')
local offset = tonumber(redis.call('GET', base .. ':offset') or '0')
if redis.call('ZSCORE', base .. ':members', member) == false then
  redis.call('ZADD', base .. ':members', redis.call('INCR', base .. ':seq'), member)
end
redis.call('HSET', base .. ':users', member, user)
redis.call('SADD', p .. ':node:' .. node .. ':rooms', room)
local keys = redis.call('ZRANGE', base .. ':members', 0, -1)
local list = {}
for i, k in ipairs(keys) do
  list[i] = redis.call('HGET', base .. ':users', k) or 'null'
end
local users = '[' .. table.concat(list, ',') .. ']'
if ARGV[10] == '1' then
  return {epoch, offset, users, '', {}}
end
local recovered = ''
local replay = {}
if ARGV[6] ~= '' then
  local since = tonumber(ARGV[7])
  local ok = (ARGV[6] == epoch) and since ~= nil and since <= offset
  if ok and since < offset then
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    redis.call('XTRIM', base .. ':history', 'MINID', now - tonumber(ARGV[8]))
    local entries = redis.call('XRANGE', base .. ':history', '-', '+')
    local first = nil
    for _, e in ipairs(entries) do
      local o = tonumber(e[2][2])
      if first == nil then first = o end
      if o > since then table.insert(replay, e[2][4]) end
    end
    if first == nil or first > since + 1 then
      ok = false
      replay = {}
    end
  end
  recovered = ok and '1' or '0'
end
local frame = '{"type":"user_joined","user":' .. user .. ',"users":' .. users .. ',"room":"' .. room .. '"}'
redis.call('PUBLISH', p .. ':bus', 'V\n' .. room .. '\n' .. member .. '\n' .. frame)
return {epoch, offset, users, recovered, replay}
"#;

/// `ARGV`: prefix, room, member, user JSON. Tells the room when the member was there.
pub const LEAVE: &str = r#"
local p, room, member, user = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local base = p .. ':room:' .. room
local removed = redis.call('ZREM', base .. ':members', member)
redis.call('HDEL', base .. ':users', member)
if removed == 1 then
  local frame = '{"type":"user_left","user":' .. user .. ',"room":"' .. room .. '"}'
  redis.call('PUBLISH', p .. ':bus', 'V\n' .. room .. '\n-\n' .. frame)
end
return removed
"#;

/// `ARGV`: prefix, room, frame prefix (the frame up to its offset), history size, history
/// lifetime in ms, a new epoch in case the room has none. Returns the offset.
pub const CHAT: &str = r#"
local p, room = ARGV[1], ARGV[2]
local base = p .. ':room:' .. room
redis.call('SET', base .. ':epoch', ARGV[6], 'NX')
local epoch = redis.call('GET', base .. ':epoch')
local o = redis.call('INCR', base .. ':offset')
local frame = ARGV[3] .. o .. '}'
local size = tonumber(ARGV[4])
if size > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('XADD', base .. ':history', 'MAXLEN', size, '*', 'o', o, 'f', frame)
  redis.call('XTRIM', base .. ':history', 'MINID', now - tonumber(ARGV[5]))
  redis.call('PEXPIRE', base .. ':history', tonumber(ARGV[5]))
end
-- A room silent for a day forgets its position (the next message starts a new epoch).
redis.call('EXPIRE', base .. ':epoch', 86400)
redis.call('EXPIRE', base .. ':offset', 86400)
redis.call('PUBLISH', p .. ':bus', 'R\n' .. room .. '\n' .. epoch .. '\n' .. o .. '\n' .. frame)
return o
"#;

/// `ARGV`: prefix, user id, frame. Publishes a private message when the user has a WebSocket on
/// a live node; returns how many such connections there are.
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
  redis.call('PUBLISH', p .. ':bus', 'U\n' .. ARGV[3] .. '\n' .. target)
end
return n
"#;

/// `ARGV`: prefix, kind (`N` or `E`), payload JSON. Gives the event the cluster's next SSE id
/// and publishes it; returns the id.
pub const SSE: &str = r#"
local p = ARGV[1]
local id = redis.call('INCR', p .. ':sse:offset')
redis.call('PUBLISH', p .. ':bus', 'S\n' .. id .. '\n' .. ARGV[2] .. '\n' .. ARGV[3])
return id
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

/// The part shared by REAP and RESYNC: removes node `n`'s members from room `room` except
/// those in `keep` (a set of member keys), announcing each; returns how many.
const DROP_MEMBERS: &str = r#"
local function drop_members(p, n, room, keep)
  local base = p .. ':room:' .. room
  local prefix = n .. '/'
  local dropped = 0
  for _, k in ipairs(redis.call('ZRANGE', base .. ':members', 0, -1)) do
    if string.sub(k, 1, #prefix) == prefix and not keep[k] then
      local user = redis.call('HGET', base .. ':users', k)
      redis.call('ZREM', base .. ':members', k)
      redis.call('HDEL', base .. ':users', k)
      if user then
        local frame = '{"type":"user_left","user":' .. user .. ',"room":"' .. room .. '"}'
        redis.call('PUBLISH', p .. ':bus', 'V\n' .. room .. '\n-\n' .. frame)
      end
      dropped = dropped + 1
    end
  end
  return dropped
end
local function drop_users(p, n)
  local prefix = n .. '/'
  for _, uid in ipairs(redis.call('SMEMBERS', p .. ':node:' .. n .. ':users')) do
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
    format!(
        "{DROP_MEMBERS}{}",
        r#"
local p, only = ARGV[1], ARGV[2]
local nodes = redis.call('SMEMBERS', p .. ':nodes')
if only ~= '' then nodes = {only} end
local reaped = 0
for _, n in ipairs(nodes) do
  if only ~= '' or redis.call('EXISTS', p .. ':node:' .. n .. ':alive') == 0 then
    for _, room in ipairs(redis.call('SMEMBERS', p .. ':node:' .. n .. ':rooms')) do
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
    )
}

/// `ARGV`: prefix, node, member count M, then M × (room, member, user JSON), then user count U,
/// then U × (user id, member, `w` or `s`). Makes Redis hold exactly this node's members and users
/// (after a reconnect): members gone meanwhile are announced as left, members Redis lost are
/// announced as joined.
pub fn resync() -> String {
    format!(
        "{DROP_MEMBERS}{}",
        r#"
local p, n = ARGV[1], ARGV[2]
local m = tonumber(ARGV[3])
local keep, rooms = {}, {}
for i = 0, m - 1 do
  local room, member = ARGV[4 + i * 3], ARGV[5 + i * 3]
  keep[member] = true
  rooms[room] = true
end
for _, room in ipairs(redis.call('SMEMBERS', p .. ':node:' .. n .. ':rooms')) do
  drop_members(p, n, room, keep)
  if not rooms[room] then redis.call('SREM', p .. ':node:' .. n .. ':rooms', room) end
end
for i = 0, m - 1 do
  local room, member, user = ARGV[4 + i * 3], ARGV[5 + i * 3], ARGV[6 + i * 3]
  local base = p .. ':room:' .. room
  redis.call('SADD', p .. ':node:' .. n .. ':rooms', room)
  if redis.call('ZSCORE', base .. ':members', member) == false then
    redis.call('ZADD', base .. ':members', redis.call('INCR', base .. ':seq'), member)
    redis.call('HSET', base .. ':users', member, user)
    local list = {}
    for j, k in ipairs(redis.call('ZRANGE', base .. ':members', 0, -1)) do
      list[j] = redis.call('HGET', base .. ':users', k) or 'null'
    end
    local frame = '{"type":"user_joined","user":' .. user .. ',"users":[' .. table.concat(list, ',') .. '],"room":"' .. room .. '"}'
    redis.call('PUBLISH', p .. ':bus', 'V\n' .. room .. '\n' .. member .. '\n' .. frame)
  end
end
drop_users(p, n)
local base = 4 + m * 3
local u = tonumber(ARGV[base])
for i = 0, u - 1 do
  local uid, member, t = ARGV[base + 1 + i * 3], ARGV[base + 2 + i * 3], ARGV[base + 3 + i * 3]
  redis.call('HSET', p .. ':user:' .. uid, member, t)
  redis.call('SADD', p .. ':node:' .. n .. ':users', uid)
end
return m
"#
    )
}
