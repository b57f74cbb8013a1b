// The README's example as a program, type-checked by ci.sh (tsc --strict) so the documented API
// stays real: node dist-examples/chat.js http://127.0.0.1:8080 alice general
import { HeraldClient, HeraldEvents, type WebSocketConstructor } from '../src/index.js';

export function run(url: string, user: string, roomName: string, WebSocket?: WebSocketConstructor): HeraldClient {
  const client = new HeraldClient(url, { user, ...(WebSocket ? { WebSocket } : {}) });
  client.on('state', ({ state, reason }) => console.log(`[${state}] ${reason}`));
  client.on('connecting', ({ delay, attempt }) => console.log(`retry ${attempt} in ${delay} ms`));
  const room = client.join(roomName);
  room.on('joined', ({ recovered, wasRecovering, position }) =>
    console.log(`in ${roomName} at ${position.epoch}/${position.offset}`, { recovered, wasRecovering }));
  room.on('chat', (m) => console.log(`#${m.offset} ${typeof m.user === 'string' ? m.user : m.user.name}: ${m.text}`));
  room.on('presence', ({ users }) => console.log(`${users.length} here`));
  client.on('private_message', (m) => console.log(`(private) ${m.text}`));
  client.on('notification', (n) => console.log(`[${n.type}] ${n.message}`));
  client.on('error', (e) => console.error(`${e.source} error ${e.code}: ${e.message}`));
  client.connect();
  const result: 'sent' | 'queued' | 'dropped' = client.chat('hello');
  console.log(`hello was ${result}`);

  const events = new HeraldEvents(url, { userId: user }).connect();
  events.on('update', (u) => console.log(`${u.resource} ${u.action}`, u.data));
  return client;
}
