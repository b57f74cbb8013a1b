// A minimal Node.js real-time server in the style of the seed chapter: WebSocket rooms and chat,
// SSE with POST /updates and POST /notifications. It is a reference point for herald-bench, not a
// product: no authentication, no limits beyond what `ws` does, no persistence.
//
//   npm install && node chapter-server.js serve --listen 127.0.0.1:0
//
// Prints `listening on http://ADDR` once it accepts connections, like Herald.

'use strict';

const http = require('http');
const crypto = require('crypto');
const { WebSocketServer, WebSocket } = require('ws');

function parseListen(argv) {
  const i = argv.indexOf('--listen');
  const spec = i >= 0 ? argv[i + 1] : '127.0.0.1:3000';
  const at = spec.lastIndexOf(':');
  return { host: spec.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(spec.slice(at + 1)) };
}

const now = () => new Date().toISOString();
const newId = () => crypto.randomUUID();

// The chapter keeps text as sent; herald sanitises it. Keep b/i/em/strong, escape the rest.
function sanitize(text) {
  return String(text)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/&lt;(\/?)(b|i|em|strong)&gt;/g, '<$1$2>');
}

const userId = (user) => (user && typeof user === 'object' ? user.id : user);

// ---- WebSocket -------------------------------------------------------------------------------

const clients = new Map(); // clientId -> { ws, user, room }
const rooms = new Map(); // room -> Set<clientId>

function send(ws, msg) {
  if (ws.readyState === WebSocket.OPEN) ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
}

function broadcast(room, msg, exclude) {
  const members = rooms.get(room);
  if (!members) return;
  const frame = JSON.stringify(msg); // serialise once for the whole room
  for (const id of members) {
    if (id === exclude) continue;
    const c = clients.get(id);
    if (c) send(c.ws, frame);
  }
}

function usersOf(room) {
  return [...(rooms.get(room) || [])].map((id) => clients.get(id).user);
}

function leave(id, client, notifySelf) {
  const room = client.room;
  if (!room) return;
  const members = rooms.get(room);
  members.delete(id);
  if (members.size === 0) rooms.delete(room);
  client.room = null;
  if (notifySelf) send(client.ws, { type: 'room_left', room });
  broadcast(room, { type: 'user_left', user: client.user, room });
}

function sendError(ws, message, code) {
  send(ws, { type: 'error', message, code });
}

function onMessage(id, client, raw) {
  let msg;
  try {
    msg = JSON.parse(raw);
  } catch {
    return sendError(client.ws, 'Invalid message format', 'invalid_format');
  }
  if (!msg || typeof msg !== 'object' || typeof msg.type !== 'string') {
    return sendError(client.ws, 'Invalid message format', 'invalid_format');
  }
  switch (msg.type) {
    case 'join': {
      if (typeof msg.room !== 'string' || msg.user === undefined) {
        return sendError(client.ws, 'join needs room and user', 'invalid_message');
      }
      leave(id, client, false);
      client.user = msg.user;
      client.room = msg.room;
      if (!rooms.has(msg.room)) rooms.set(msg.room, new Set());
      rooms.get(msg.room).add(id);
      const users = usersOf(msg.room);
      send(client.ws, { type: 'room_joined', room: msg.room, users });
      broadcast(msg.room, { type: 'user_joined', user: msg.user, users, room: msg.room }, id);
      return;
    }
    case 'leave':
      if (!client.room) return sendError(client.ws, 'Not in a room', 'not_in_room');
      return leave(id, client, true);
    case 'chat':
      if (!client.room) return sendError(client.ws, 'Not in a room', 'not_in_room');
      return broadcast(client.room, {
        type: 'chat',
        id: newId(),
        user: client.user,
        text: sanitize(msg.text),
        timestamp: now(),
        room: client.room,
      });
    case 'typing':
      if (!client.room) return sendError(client.ws, 'Not in a room', 'not_in_room');
      return broadcast(
        client.room,
        { type: 'typing', user: client.user, isTyping: !!msg.isTyping, room: client.room },
        id,
      );
    case 'private_message': {
      const from = client.user;
      let found = false;
      const frame = { type: 'private_message', id: newId(), from, text: sanitize(msg.text), timestamp: now() };
      for (const c of clients.values()) {
        if (c.user !== undefined && userId(c.user) === msg.target) {
          send(c.ws, frame);
          found = true;
        }
      }
      if (!found) sendError(client.ws, 'User not found', 'user_not_found');
      return;
    }
    case 'ping':
      return send(client.ws, { type: 'pong' });
    default:
      return sendError(client.ws, 'Unknown message type', 'unknown_type');
  }
}

// ---- SSE -------------------------------------------------------------------------------------

const streams = new Map(); // streamId -> { res, userId }

function sseWrite(res, event, data) {
  res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

function readJson(req, cb) {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    try {
      cb(null, JSON.parse(Buffer.concat(chunks).toString('utf8')));
    } catch (e) {
      cb(e);
    }
  });
}

function json(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'application/json', 'Access-Control-Allow-Origin': '*' });
  res.end(JSON.stringify(body));
}

function badRequest(res, code, message) {
  json(res, 400, { success: false, error: { code, message } });
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  if (req.method === 'GET' && url.pathname === '/events') {
    res.writeHead(200, {
      'Content-Type': 'text/event-stream',
      'Cache-Control': 'no-cache',
      Connection: 'keep-alive',
      'Access-Control-Allow-Origin': '*',
    });
    const id = newId();
    streams.set(id, { res, userId: url.searchParams.get('userId') });
    sseWrite(res, 'connect', { type: 'connected', timestamp: now() });
    req.on('close', () => streams.delete(id));
    return;
  }
  if (req.method === 'POST' && url.pathname === '/updates') {
    return readJson(req, (err, body) => {
      if (err) return badRequest(res, 'invalid_json', 'Invalid JSON');
      if (!body || typeof body.resource !== 'string' || typeof body.action !== 'string') {
        return badRequest(res, 'invalid_request', 'resource and action are required');
      }
      const update = { resource: body.resource, action: body.action, data: body.data, timestamp: now() };
      const frame = `event: update\ndata: ${JSON.stringify(update)}\n\n`;
      for (const s of streams.values()) s.res.write(frame);
      json(res, 200, { success: true });
    });
  }
  if (req.method === 'POST' && url.pathname === '/notifications') {
    return readJson(req, (err, body) => {
      if (err) return badRequest(res, 'invalid_json', 'Invalid JSON');
      if (!body || typeof body.message !== 'string') {
        return badRequest(res, 'invalid_request', 'message is required');
      }
      const n = { id: newId(), message: body.message, type: body.type || 'info', timestamp: now() };
      if (body.userId) n.userId = body.userId;
      for (const s of streams.values()) {
        if (!body.userId || s.userId === body.userId) sseWrite(s.res, 'notification', n);
      }
      for (const c of clients.values()) {
        if (!body.userId || (c.user !== undefined && userId(c.user) === body.userId)) {
          send(c.ws, { type: 'notification', content: n });
        }
      }
      json(res, 200, { success: true, notificationId: n.id });
    });
  }
  json(res, 404, { success: false, error: { code: 'not_found', message: 'Not found' } });
});

const wss = new WebSocketServer({ server, maxPayload: 64 * 1024 });
wss.on('connection', (ws) => {
  const id = newId();
  const client = { ws, user: undefined, room: null };
  clients.set(id, client);
  ws.on('message', (raw) => onMessage(id, client, raw));
  ws.on('close', () => {
    leave(id, client, false);
    clients.delete(id);
  });
  ws.on('error', () => {});
  send(ws, { type: 'welcome', clientId: id });
});

const { host, port } = parseListen(process.argv);
server.listen(port, host, () => {
  const a = server.address();
  const h = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  console.log(`listening on http://${h}:${a.port}`);
});
process.on('SIGTERM', () => process.exit(0));
