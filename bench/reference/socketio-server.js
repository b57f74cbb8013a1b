// Socket.IO 4 restricted to its long-polling transport: the reference point of herald-bench's
// `polling` scenario (`--dialect socketio`). Rooms and chat only, as the scenario uses them:
// `join` (a room name) puts the socket in that room (leaving the one it was in), `chat` (a text)
// goes to everyone in the socket's room, the sender included.
//
//   npm install && node socketio-server.js serve --listen 127.0.0.1:0
//
// Prints `listening on http://ADDR` once it accepts connections, like Herald.

'use strict';

const http = require('http');
const { Server } = require('socket.io');

const i = process.argv.indexOf('--listen');
const spec = i >= 0 ? process.argv[i + 1] : '127.0.0.1:3000';
const at = spec.lastIndexOf(':');
const host = spec.slice(0, at).replace(/^\[|\]$/g, '');
const port = Number(spec.slice(at + 1));

const server = http.createServer();
const io = new Server(server, { transports: ['polling'], serveClient: false });

io.on('connection', (socket) => {
  let room = null;
  socket.on('join', (name) => {
    if (room) socket.leave(room);
    room = String(name);
    socket.join(room);
  });
  socket.on('chat', (text) => {
    if (room) io.to(room).emit('chat', String(text));
  });
});

server.listen(port, host, () => {
  const a = server.address();
  const shown = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  console.log(`listening on http://${shown}:${a.port}`);
});
process.on('SIGTERM', () => process.exit(0));
