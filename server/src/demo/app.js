// Herald demo page: a chat room and a live dashboard, built on the Herald TypeScript client
// (clients/typescript, bundled as herald-client.js, global `Herald`). The client does the
// networking: the WebSocket, reconnecting with backoff, resuming the room with `since`, queueing
// sends while disconnected, and the Server-Sent Events stream with Last-Event-ID. This file only
// renders what it reports.
//
// Everything the server sends is treated as untrusted: text goes into the page through
// textContent, and chat text (which the server already sanitised) is rebuilt node by node so
// that only <b>, <i>, <em> and <strong> survive, without attributes.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);

  const TYPING_IDLE_MS = 2000;
  const TOAST_MS = 6000;
  const FEED_LIMIT = 20;
  const NEWS_LIMIT = 10;

  // ---------------------------------------------------------------- helpers

  /** A user is a plain name (which is also its id) or an object with `id` and `name`. */
  const userId = (user) => (typeof user === 'string' ? user : user && String(user.id));
  const userName = (user) =>
    typeof user === 'string' ? user : user && String(user.name || user.id);

  function formatTime(timestamp) {
    const date = timestamp ? new Date(timestamp) : new Date();
    return Number.isNaN(date.getTime()) ? '' : date.toLocaleTimeString();
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  const ALLOWED_TAGS = new Set(['B', 'I', 'EM', 'STRONG']);
  const DROPPED_TAGS = new Set(['SCRIPT', 'STYLE', 'TEMPLATE', 'NOSCRIPT', 'IFRAME', 'OBJECT']);

  /**
   * Turns sanitised chat HTML into DOM nodes without ever handing the string to the live
   * document. It is parsed in an inert document (no scripts run, nothing loads), then copied:
   * text as text, b/i/em/strong as fresh elements without attributes, anything else flattened
   * to its text.
   */
  function richText(html) {
    const fragment = document.createDocumentFragment();
    const parsed = new DOMParser().parseFromString(String(html), 'text/html');
    const copy = (from, to) => {
      for (const node of from.childNodes) {
        if (node.nodeType === Node.TEXT_NODE) {
          to.appendChild(document.createTextNode(node.nodeValue));
        } else if (node.nodeType === Node.ELEMENT_NODE) {
          if (DROPPED_TAGS.has(node.tagName)) continue;
          if (ALLOWED_TAGS.has(node.tagName)) {
            const kept = document.createElement(node.tagName.toLowerCase());
            copy(node, kept);
            to.appendChild(kept);
          } else {
            copy(node, to);
          }
        }
      }
    };
    copy(parsed.body, fragment);
    return fragment;
  }

  function setStatus(node, label, state, detail) {
    node.dataset.state = state;
    node.textContent = `${label}: ${detail || state}`;
  }

  function setStatus(node, label, state, detail) {
    node.dataset.state = state;
    node.textContent = `${label}: ${detail || state}`;
  }

  // ---------------------------------------------------------------- state

  if (!window.Herald) {
    // The client bundle is served next to this file; without it the page cannot talk at all.
    setStatus($('ws-status'), 'Chat', 'disconnected', 'herald-client.js did not load');
    setStatus($('sse-status'), 'Live', 'disconnected', 'herald-client.js did not load');
    throw new Error('herald-client.js did not load: the server must serve GET /herald-client.js');
  }
  const { HeraldClient, HeraldEvents } = window.Herald;

  const state = {
    me: null, // the user sent in `join`: the name string, which is also the id
    room: null, // the room we are in (or rejoining after a lost connection)
    members: [], // users in the room, as the server sent them
    typing: new Map(), // user id -> name
    seenNotifications: new Set(), // notifications arrive over SSE and WebSocket alike
    amTyping: false,
    typingTimer: null,
  };

  // ---------------------------------------------------------------- chat over the client

  const client = new HeraldClient(location.origin);
  const wsStatus = $('ws-status');

  client.on('state', ({ state: now, reason }) => {
    if (now === 'connected') setStatus(wsStatus, 'Chat', 'connected');
    else if (now === 'disconnected') setStatus(wsStatus, 'Chat', 'disconnected', reason);
    else if (reason === 'connect called') setStatus(wsStatus, 'Chat', 'connecting', 'connecting…');
    else setStatus(wsStatus, 'Chat', 'reconnecting', `reconnecting (${reason})`);
    if (now !== 'connected') {
      // Presence is stale until the room is joined again; sends made meanwhile are queued.
      state.members = [];
      state.typing.clear();
      state.amTyping = false;
      clearTimeout(state.typingTimer);
      renderMembers();
      renderTyping();
    }
  });
  client.on('connecting', ({ delay, reason }) => {
    setStatus(wsStatus, 'Chat', 'reconnecting',
      `reconnecting in ${Math.ceil(delay / 1000)} s (${reason})`);
  });
  client.on('connected', ({ clientId, transport }) => {
    wsStatus.title = `${transport}, client ${clientId}`;
  });

  client.on('joined', (event) => {
    state.room = event.room;
    state.members = event.users;
    state.typing.clear();
    if (event.wasRecovering && !event.recovered) {
      notice('Reconnected; some messages may have been missed.');
    }
    notice(event.wasRecovering ? `You are back in ${event.room}.` : `You joined ${event.room}.`);
    renderRoom();
  });
  client.on('left', ({ room, reason }) => {
    if (room !== state.room) return;
    state.room = null;
    notice(reason === 'left' ? `You left ${room}.` : `You left ${room} (${reason}).`);
    renderRoom();
  });
  client.on('user_joined', (frame) => {
    state.members = frame.users;
    notice(`${userName(frame.user)} joined.`);
    renderMembers();
  });
  client.on('user_left', (frame) => {
    state.members = state.members.filter((u) => userId(u) !== userId(frame.user));
    state.typing.delete(userId(frame.user));
    notice(`${userName(frame.user)} left.`);
    renderMembers();
    renderTyping();
  });
  client.on('typing', (frame) => {
    if (frame.isTyping) state.typing.set(userId(frame.user), userName(frame.user));
    else state.typing.delete(userId(frame.user));
    renderTyping();
  });
  client.on('chat', (frame) => {
    // The client already dropped repeats (by offset) after a resume.
    state.typing.delete(userId(frame.user));
    renderTyping();
    const mine = userId(frame.user) === userId(state.me);
    addMessage({
      kind: mine ? 'chat mine' : 'chat',
      who: userName(frame.user),
      text: frame.text,
      timestamp: frame.timestamp,
    });
  });
  client.on('private_message', (frame) => {
    addMessage({
      kind: 'private incoming',
      who: `${userName(frame.from)} → you`,
      text: frame.text,
      timestamp: frame.timestamp,
    });
  });
  client.on('notification', (content) => showNotification(content));
  client.on('error', (error) => {
    notice(`Error: ${error.message}${error.code ? ` (${error.code})` : ''}`, 'error');
  });

  /** Sends through the client; says so when the send waits for the connection. */
  function send(action) {
    let result;
    try {
      result = action();
    } catch (err) {
      notice(`Not sent: ${err.message}`, 'error');
      return false;
    }
    if (result === 'queued') notice('Queued: it will be sent when the connection is back.');
    return result !== 'dropped';
  }

  // ---------------------------------------------------------------- rendering the chat

  /** `plain` text is shown as typed; otherwise it is sanitised chat HTML from the server. */
  function addMessage({ kind, who, text, timestamp, plain }) {
    const item = el('li', `msg ${kind}`);
    const head = el('div', 'meta');
    head.appendChild(el('span', 'who', who));
    head.appendChild(el('time', 'when', formatTime(timestamp)));
    if (timestamp) head.lastChild.dateTime = timestamp;
    const body = el('div', 'text');
    if (plain) body.textContent = text;
    else body.appendChild(richText(text));
    item.append(head, body);
    appendToLog(item);
  }

  function notice(text, kind) {
    const item = el('li', `notice${kind ? ` ${kind}` : ''}`, text);
    if (kind === 'error') item.dataset.testid = 'error';
    appendToLog(item);
  }

  function appendToLog(item) {
    const log = $('messages');
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    log.appendChild(item);
    while (log.children.length > 500) log.firstChild.remove();
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  function renderRoom() {
    const inRoom = Boolean(state.room);
    $('current-room').textContent = inRoom ? `· ${state.room}` : '';
    $('message').disabled = !inRoom;
    $('send').disabled = !inRoom;
    $('leave').disabled = !inRoom;
    $('message').placeholder = inRoom
      ? `Message ${state.room} (b, i, em and strong tags allowed)`
      : 'Join a room to chat';
    if (!inRoom) {
      state.members = [];
      state.typing.clear();
    }
    renderMembers();
    renderTyping();
  }

  function renderMembers() {
    const list = $('members');
    list.replaceChildren();
    const myId = userId(state.me);
    for (const user of state.members) {
      const id = userId(user);
      const item = el('li', id === myId ? 'me' : 'other', userName(user));
      item.dataset.userId = id;
      if (id === myId) {
        item.appendChild(el('span', 'you', ' (you)'));
      } else {
        item.tabIndex = 0;
        item.title = `Message ${userName(user)} privately`;
      }
      list.appendChild(item);
    }
    $('member-count').textContent = state.members.length ? `(${state.members.length})` : '';
    renderPmTargets();
  }

  function renderPmTargets() {
    const select = $('pm-target');
    const previous = select.value;
    const others = state.members.filter((u) => userId(u) !== userId(state.me));
    select.replaceChildren();
    if (others.length === 0) {
      select.appendChild(el('option', '', '(nobody else here)')).value = '';
    }
    for (const user of others) {
      const option = el('option', '', userName(user));
      option.value = userId(user);
      select.appendChild(option);
    }
    if (others.some((u) => userId(u) === previous)) select.value = previous;
    const off = others.length === 0;
    select.disabled = off;
    $('pm-text').disabled = off;
    $('pm-send').disabled = off;
  }

  function renderTyping() {
    const names = [...state.typing.values()];
    let text = '';
    if (names.length === 1) text = `${names[0]} is typing…`;
    else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length > 2) text = `${names.length} people are typing…`;
    $('typing').textContent = text;
  }

  // ---------------------------------------------------------------- typing indicator (outgoing)

  function typingActivity() {
    if (!state.room) return;
    if (!state.amTyping && client.typing(true) === 'sent') state.amTyping = true;
    clearTimeout(state.typingTimer);
    state.typingTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
  }

  function stopTyping() {
    clearTimeout(state.typingTimer);
    if (state.amTyping) {
      state.amTyping = false;
      if (state.room) client.typing(false);
    }
  }

  // ---------------------------------------------------------------- live dashboard over SSE

  const sseStatus = $('sse-status');
  let live = null;

  /** Opens the stream for `user` (a user id), or untargeted when there is none yet. */
  function openLive(user) {
    if (live && live.userId === user) return;
    if (live) live.stream.close();
    const stream = new HeraldEvents(location.origin, user ? { userId: user } : {});
    live = { stream, userId: user };
    stream.on('state', ({ state: now, reason }) => {
      if (now === 'connected') {
        setStatus(sseStatus, 'Live', 'connected', user ? `connected as ${user}` : 'connected');
      } else if (now === 'connecting') {
        const first = reason === 'connect called';
        setStatus(sseStatus, 'Live', first ? 'connecting' : 'reconnecting',
          first ? 'connecting…' : 'reconnecting…');
      } else {
        setStatus(sseStatus, 'Live', 'disconnected');
      }
    });
    stream.on('notification', showNotification);
    stream.on('update', showUpdate);
    stream.on('stock_update', showStock);
    stream.on('news', showNews);
    stream.connect();
  }

  function prepend(list, item, limit) {
    const empty = list.querySelector('.empty');
    if (empty) empty.remove();
    list.insertBefore(item, list.firstChild);
    while (list.children.length > limit) list.lastChild.remove();
  }

  function showNotification(n) {
    if (!n || typeof n !== 'object') return;
    if (n.id) {
      if (state.seenNotifications.has(n.id)) return;
      state.seenNotifications.add(n.id);
    }
    const kind = String(n.type || 'info');
    const safeKind = /^[a-z0-9_-]+$/i.test(kind) ? kind : 'info';

    const toast = el('div', `toast toast-${safeKind}`);
    toast.dataset.id = n.id || '';
    toast.setAttribute('role', 'status');
    toast.appendChild(el('strong', 'toast-kind', n.userId ? `${kind} · for you` : kind));
    toast.appendChild(el('span', 'toast-text', String(n.message ?? '')));
    toast.addEventListener('click', () => toast.remove());
    $('toasts').appendChild(toast);
    setTimeout(() => toast.remove(), TOAST_MS);

    const item = el('li', `note note-${safeKind}`);
    item.dataset.id = n.id || '';
    item.appendChild(el('time', 'when', formatTime(n.timestamp)));
    item.appendChild(el('span', 'tag', kind));
    item.appendChild(el('span', 'what', String(n.message ?? '')));
    prepend($('notifications'), item, FEED_LIMIT);
  }

  function showUpdate(u) {
    if (!u || typeof u !== 'object') return;
    const item = el('li', 'update');
    item.dataset.resource = String(u.resource ?? '');
    item.dataset.action = String(u.action ?? '');
    item.appendChild(el('time', 'when', formatTime(u.timestamp)));
    item.appendChild(el('span', 'tag', `${u.resource} ${u.action}`));
    if (u.data !== undefined) {
      let data = JSON.stringify(u.data);
      if (data.length > 200) data = `${data.slice(0, 200)}…`;
      item.appendChild(el('code', 'what', data));
    }
    prepend($('updates'), item, FEED_LIMIT);
  }

  function showStock(s) {
    if (!s || typeof s.symbol !== 'string' || typeof s.price !== 'number') return;
    const body = $('stocks').tBodies[0];
    const empty = body.querySelector('.empty');
    if (empty) empty.remove();
    let row = [...body.rows].find((r) => r.dataset.symbol === s.symbol);
    if (!row) {
      row = body.insertRow();
      row.dataset.symbol = s.symbol;
      row.insertCell().className = 'symbol';
      row.insertCell().className = 'price';
      row.insertCell().className = 'change';
      row.cells[0].textContent = s.symbol;
    }
    row.cells[1].textContent = s.price.toFixed(2);
    const change = typeof s.change === 'number' ? s.change * 100 : 0; // a fraction on the wire
    row.cells[2].textContent = `${change >= 0 ? '▲' : '▼'} ${Math.abs(change).toFixed(2)}%`;
    row.cells[2].className = `change ${change >= 0 ? 'up' : 'down'}`;
    row.classList.remove('flash');
    void row.offsetWidth; // restart the animation
    row.classList.add('flash');
  }

  function showNews(n) {
    if (!n || typeof n !== 'object') return;
    const item = el('li', 'news-item');
    item.appendChild(el('time', 'when', formatTime(n.timestamp)));
    item.appendChild(el('span', 'what', String(n.headline ?? '')));
    prepend($('news'), item, NEWS_LIMIT);
  }

  // ---------------------------------------------------------------- wiring

  $('join-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const name = $('name').value.trim();
    const room = $('room').value.trim() || 'general';
    if (!name) return;
    if (state.me !== name) state.seenNotifications.clear();
    stopTyping();
    state.me = name;
    openLive(userId(state.me));
    client.join(room, { user: name }); // sent now, or when the connection opens
  });

  $('leave').addEventListener('click', () => {
    stopTyping();
    client.leave();
  });

  $('message').addEventListener('input', () => {
    if ($('message').value) typingActivity();
    else stopTyping();
  });

  $('message-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const text = $('message').value;
    if (!text.trim() || !state.room) return;
    stopTyping();
    if (send(() => client.chat(text))) $('message').value = '';
  });

  $('members').addEventListener('click', (event) => {
    const item = event.target.closest('li.other');
    if (!item) return;
    $('pm-target').value = item.dataset.userId;
    $('pm-text').focus();
  });
  $('members').addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && event.target.matches('li.other')) event.target.click();
  });

  $('pm-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const target = $('pm-target').value;
    const text = $('pm-text').value;
    if (!target || !text.trim()) return;
    if (send(() => client.privateMessage(target, text))) {
      $('pm-text').value = '';
      const to = $('pm-target').selectedOptions[0];
      addMessage({
        kind: 'private outgoing',
        who: `you → ${to ? to.textContent : target}`,
        text,
        plain: true,
        timestamp: new Date().toISOString(),
      });
    }
  });

  window.addEventListener('beforeunload', () => {
    client.close();
    if (live) live.stream.close();
  });

  // A handle for the browser console and the browser test; the page itself does not use it.
  window.heraldDemo = {
    client,
    get events() {
      return live && live.stream;
    },
    state,
  };

  client.connect();
  openLive(undefined);
})();
