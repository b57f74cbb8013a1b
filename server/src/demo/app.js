// Herald demo page: a chat room over the WebSocket at /ws and a live dashboard over the
// Server-Sent Events stream at /events. Plain browser JavaScript, no build step, no libraries.
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
  const BACKOFF_BASE_MS = 1000;
  const BACKOFF_MAX_MS = 30000;

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

  function backoffDelay(attempt) {
    const exp = Math.min(BACKOFF_BASE_MS * 2 ** attempt, BACKOFF_MAX_MS);
    return Math.round(exp / 2 + Math.random() * (exp / 2)); // jitter: [exp/2, exp]
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

  // ---------------------------------------------------------------- state

  const state = {
    me: null, // the user sent in `join`: the name string, which is also the id
    room: null, // the room we are in, per the server
    wantedRoom: null, // the room to (re)join whenever the socket opens
    members: [], // users in the room, as the server sent them
    typing: new Map(), // user id -> name
    position: new Map(), // room -> {epoch, offset} of the last chat seen, for resuming
    seenChat: new Set(), // room/epoch/id of chats already shown (a resume may repeat some)
    seenNotifications: new Set(), // notifications arrive over SSE and WebSocket alike
    amTyping: false,
    typingTimer: null,
  };

  // ---------------------------------------------------------------- chat over WebSocket

  const chat = {
    ws: null,
    attempts: 0,
    retryTimer: null,
    clientId: null,

    url() {
      const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
      return `${scheme}//${location.host}/ws`;
    },

    connect() {
      clearTimeout(this.retryTimer);
      setStatus($('ws-status'), 'Chat', 'connecting', 'connecting…');
      let ws;
      try {
        ws = new WebSocket(this.url());
      } catch (err) {
        this.scheduleReconnect();
        return;
      }
      this.ws = ws;
      ws.onopen = () => {
        this.attempts = 0;
        setStatus($('ws-status'), 'Chat', 'connected');
        if (state.wantedRoom) this.join(state.wantedRoom, true);
      };
      ws.onmessage = (event) => {
        let frame;
        try {
          frame = JSON.parse(event.data);
        } catch {
          return;
        }
        if (frame && typeof frame.type === 'string') onFrame(frame);
      };
      ws.onclose = (event) => {
        if (this.ws !== ws) return;
        this.ws = null;
        state.room = null;
        state.amTyping = false;
        clearTimeout(state.typingTimer);
        renderRoom();
        if (event.code === 1000) {
          setStatus($('ws-status'), 'Chat', 'disconnected');
        } else {
          this.scheduleReconnect(event.code);
        }
      };
      // Errors are always followed by a close event, which does the work.
      ws.onerror = () => {};
    },

    scheduleReconnect(code) {
      const delay = backoffDelay(this.attempts);
      this.attempts += 1;
      const why = code ? ` (closed ${code})` : '';
      setStatus($('ws-status'), 'Chat', 'reconnecting',
        `reconnecting in ${Math.ceil(delay / 1000)} s${why}`);
      this.retryTimer = setTimeout(() => this.connect(), delay);
    },

    send(frame) {
      if (this.ws && this.ws.readyState === WebSocket.OPEN) {
        this.ws.send(JSON.stringify(frame));
        return true;
      }
      notice('Not connected; try again in a moment.', 'error');
      return false;
    },

    join(room, resuming) {
      const frame = { type: 'join', room, user: state.me };
      const seen = state.position.get(room);
      if (resuming && seen && typeof seen.epoch === 'string') {
        frame.since = { offset: seen.offset, epoch: seen.epoch };
      }
      this.send(frame);
    },
  };

  function onFrame(frame) {
    switch (frame.type) {
      case 'welcome':
        chat.clientId = frame.clientId;
        $('ws-status').title = `WebSocket /ws, client ${frame.clientId}`;
        break;
      case 'room_joined':
        onRoomJoined(frame);
        break;
      case 'room_left':
        state.room = null;
        state.members = [];
        state.typing.clear();
        notice(`You left ${frame.room}.`);
        renderRoom();
        break;
      case 'user_joined':
        if (frame.room && frame.room !== state.room) break;
        state.members = Array.isArray(frame.users) ? frame.users : state.members;
        notice(`${userName(frame.user)} joined.`);
        renderMembers();
        break;
      case 'user_left':
        if (frame.room && frame.room !== state.room) break;
        state.members = state.members.filter((u) => userId(u) !== userId(frame.user));
        state.typing.delete(userId(frame.user));
        notice(`${userName(frame.user)} left.`);
        renderMembers();
        renderTyping();
        break;
      case 'chat':
        onChat(frame);
        break;
      case 'typing':
        if (frame.room && frame.room !== state.room) break;
        if (frame.isTyping) state.typing.set(userId(frame.user), userName(frame.user));
        else state.typing.delete(userId(frame.user));
        renderTyping();
        break;
      case 'private_message':
        addMessage({
          kind: 'private incoming',
          who: `${userName(frame.from)} → you`,
          text: frame.text,
          timestamp: frame.timestamp,
        });
        break;
      case 'notification':
        showNotification(frame.content);
        break;
      case 'error':
        notice(`Error: ${frame.message}${frame.code ? ` (${frame.code})` : ''}`, 'error');
        break;
      default:
        break; // pong, and anything newer than this page
    }
  }

  function onRoomJoined(frame) {
    state.room = frame.room;
    state.members = Array.isArray(frame.users) ? frame.users : [];
    state.typing.clear();
    if (frame.recovered !== true) {
      // A fresh join, or a resume that was impossible: count from the room's latest message.
      // (On a successful resume the missed messages follow and advance the position.)
      state.position.set(frame.room, { epoch: frame.epoch, offset: frame.offset || 0 });
    }
    if (frame.recovered === false) notice('Reconnected; some messages may have been missed.');
    notice(`You joined ${frame.room}.`);
    renderRoom();
  }

  function onChat(frame) {
    if (frame.room && frame.room !== state.room) return;
    const seen = state.position.get(frame.room);
    if (frame.id) {
      // Ids are unique within a room's stream; a restarted stream (new epoch) may reuse them.
      const key = `${frame.room}\n${seen ? seen.epoch : ''}\n${frame.id}`;
      if (state.seenChat.has(key)) return;
      state.seenChat.add(key);
    }
    if (seen && typeof frame.offset === 'number' && frame.offset > seen.offset) {
      seen.offset = frame.offset;
    }
    state.typing.delete(userId(frame.user));
    renderTyping();
    const mine = userId(frame.user) === userId(state.me);
    addMessage({
      kind: mine ? 'chat mine' : 'chat',
      who: userName(frame.user),
      text: frame.text,
      timestamp: frame.timestamp,
    });
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
    if (!state.amTyping) {
      state.amTyping = true;
      chat.send({ type: 'typing', isTyping: true });
    }
    clearTimeout(state.typingTimer);
    state.typingTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
  }

  function stopTyping() {
    clearTimeout(state.typingTimer);
    if (state.amTyping) {
      state.amTyping = false;
      if (state.room) chat.send({ type: 'typing', isTyping: false });
    }
  }

  // ---------------------------------------------------------------- live dashboard over SSE

  const live = {
    source: null,
    forUser: undefined,
    attempts: 0,
    retryTimer: null,

    /** Opens the stream for `user` (a user id), or untargeted when there is none yet. */
    connect(user) {
      if (this.source && this.forUser === user) return;
      this.close();
      this.forUser = user;
      const url = user ? `/events?userId=${encodeURIComponent(user)}` : '/events';
      setStatus($('sse-status'), 'Live', 'connecting', 'connecting…');
      const source = new EventSource(url);
      this.source = source;
      const parse = (handler) => (event) => {
        let data;
        try {
          data = JSON.parse(event.data);
        } catch {
          return;
        }
        handler(data);
      };
      source.onopen = () => {
        this.attempts = 0;
        setStatus($('sse-status'), 'Live', 'connected', user ? `connected as ${user}` : 'connected');
      };
      source.onerror = () => {
        if (source.readyState === EventSource.CLOSED) {
          // The browser gave up (e.g. an HTTP error); retry ourselves with backoff.
          const delay = backoffDelay(this.attempts);
          this.attempts += 1;
          setStatus($('sse-status'), 'Live', 'reconnecting',
            `reconnecting in ${Math.ceil(delay / 1000)} s`);
          this.source = null;
          this.retryTimer = setTimeout(() => this.connect(this.forUser), delay);
        } else {
          setStatus($('sse-status'), 'Live', 'reconnecting', 'reconnecting…');
        }
      };
      source.addEventListener('notification', parse(showNotification));
      source.addEventListener('update', parse(showUpdate));
      source.addEventListener('stock_update', parse(showStock));
      source.addEventListener('news', parse(showNews));
    },

    close() {
      clearTimeout(this.retryTimer);
      if (this.source) this.source.close();
      this.source = null;
    },
  };

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
    state.wantedRoom = room;
    live.connect(userId(state.me));
    if (chat.ws && chat.ws.readyState === WebSocket.OPEN) chat.join(room, false);
    else if (!chat.ws) chat.connect(); // joins on open
    // while connecting, onopen joins state.wantedRoom
  });

  $('leave').addEventListener('click', () => {
    stopTyping();
    state.wantedRoom = null;
    chat.send({ type: 'leave' });
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
    if (chat.send({ type: 'chat', text })) $('message').value = '';
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
    if (chat.send({ type: 'private_message', target, text })) {
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
    if (chat.ws) chat.ws.close(1000, 'page closed');
    live.close();
  });

  // A handle for the browser console and the browser test; the page itself does not use it.
  window.heraldDemo = { chat, live, state };

  chat.connect();
  live.connect(undefined);
})();
