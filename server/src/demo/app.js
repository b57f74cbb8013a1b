// Herald demo page: a chat room, a WebRTC call panel and a live dashboard, built on the Herald TypeScript client
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
  const { HeraldClient, HeraldEvents, PeerManager } = window.Herald;

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

  // Presence as diffs: the page keeps its member list from who joins and leaves, so a large
  // room never sends it whole lists.
  const client = new HeraldClient(location.origin, { presence: 'diff' });
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
      renderPeers([]); // peer ids belong to a connection: ask again once back in the room
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
    refreshPeers();
  });
  client.on('left', ({ room, reason }) => {
    if (room !== state.room) return;
    state.room = null;
    notice(reason === 'left' ? `You left ${room}.` : `You left ${room} (${reason}).`);
    // Outside the room no signal goes out, so the call ends here without a hangup; the peer
    // sees this connection leave the room.
    endCall(`you left ${room}`, false);
    renderRoom();
    refreshPeers();
  });
  client.on('user_joined', (frame) => {
    state.members = frame.users;
    notice(`${userName(frame.user)} joined.`);
    renderMembers();
    refreshPeers();
  });
  client.on('user_left', (frame) => {
    state.members = state.members.filter((u) => userId(u) !== userId(frame.user));
    state.typing.delete(userId(frame.user));
    notice(`${userName(frame.user)} left.`);
    renderMembers();
    renderTyping();
    refreshPeers();
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

  // ---------------------------------------------------------------- call: a WebRTC DataChannel
  //
  // Herald carries the signaling (offer, answer, ICE candidates, hangup) between two members of
  // the room; the text then goes straight from browser to browser over a DataChannel. The
  // client's PeerManager does the perfect negotiation; this part only renders it.

  const calls = PeerManager && window.RTCPeerConnection ? new PeerManager(client) : null;
  const call = {
    peer: null, // the PeerConnection of the call in progress (one at a time on this page)
    channel: null, // its DataChannel
    name: '', // who is on the other end
    peers: [], // the room's peers, as the last `peers` answer listed them
    sent: 0, // signals this page sent through Herald for the current call
    received: 0, // and received
  };
  const callStatus = $('call-status');

  function setCallStatus(state, text) {
    callStatus.dataset.state = state;
    callStatus.textContent = text || state;
  }

  function callLine(kind, who, text) {
    const item = el('li', `msg ${kind}`);
    const head = el('div', 'meta');
    head.appendChild(el('span', 'who', who));
    head.appendChild(el('time', 'when', formatTime()));
    item.append(head, el('div', 'text', text)); // text from the peer is shown as text, never HTML
    const log = $('call-log');
    log.appendChild(item);
    while (log.children.length > 200) log.firstChild.remove();
    log.scrollTop = log.scrollHeight;
  }

  function callNotice(text, kind) {
    const item = el('li', `notice${kind ? ` ${kind}` : ''}`, text);
    $('call-log').appendChild(item);
  }

  let peersAsked = 0;
  function refreshPeers() {
    if (!calls) return;
    if (!state.room || client.state !== 'connected') {
      renderPeers([]);
      return;
    }
    const ask = ++peersAsked;
    calls.refresh().then(
      (peers) => {
        if (ask !== peersAsked) return;
        // The other end left the room: its connection is gone, and with it the call's signaling.
        if (call.peer && !peers.some((p) => p.peerId === call.peer.peerId)) {
          endCall(`${call.name} left the room`, false);
        }
        renderPeers(peers);
      },
      (err) => {
        if (ask !== peersAsked) return;
        renderPeers([]);
        if (err.code === 'unsupported') setCallStatus('idle', 'no signaling on this server');
        else if (err.code !== 'disconnected' && err.code !== 'not_in_room') {
          callNotice(`Could not list peers: ${err.message}`, 'error');
        }
      },
    );
  }

  function renderPeers(peers) {
    call.peers = peers;
    const list = $('peers');
    list.replaceChildren();
    if (!calls) {
      list.appendChild(el('li', 'empty', 'This browser has no WebRTC.'));
    } else if (peers.length === 0) {
      list.appendChild(el('li', 'empty',
        state.room ? 'Nobody else in the room to call.' : 'Join a room to see who you can call.'));
    }
    for (const peer of peers) {
      const item = el('li', 'other');
      item.dataset.peerId = peer.peerId;
      item.dataset.userId = userId(peer.user);
      item.appendChild(el('span', 'peer-name', userName(peer.user)));
      const button = el('button', 'call', 'Call');
      button.type = 'button';
      button.disabled = Boolean(call.peer);
      button.title = `Open a DataChannel with ${userName(peer.user)} (peer ${peer.peerId})`;
      item.appendChild(button);
      list.appendChild(item);
    }
  }

  function attachCall(peer) {
    call.peer = peer;
    call.name = peer.user !== undefined ? userName(peer.user) : peer.peerId;
    call.sent = 0;
    call.received = 0;
    setCallStatus('calling', `connecting to ${call.name}…`);
    peer.on('sent', ({ result }) => {
      if (result === 'sent') call.sent += 1;
    });
    peer.on('state', (now) => {
      if (call.peer !== peer) return;
      if (now === 'failed') {
        setCallStatus('failed', `connection to ${call.name} failed`);
        callNotice(`The connection to ${call.name} failed.`, 'error');
      }
    });
    peer.on('error', ({ message }) => {
      if (call.peer === peer) callNotice(message, 'error');
    });
    peer.on('closed', ({ reason }) => {
      if (call.peer === peer) endCall(reason);
    });
    peer.on('datachannel', (channel) => {
      if (call.peer === peer) attachChannel(channel);
    });
    renderPeers(call.peers);
  }

  function attachChannel(channel) {
    const peer = call.peer;
    call.channel = channel;
    let opened = false;
    const open = () => {
      // A channel the peer opened may already be open when it arrives, and still fire `open`.
      if (call.channel !== channel || opened) return;
      opened = true;
      setCallStatus('open', `in a call with ${call.name}`);
      callNotice(`DataChannel open with ${call.name}.`);
      $('call-text').disabled = false;
      $('call-send').disabled = false;
    };
    channel.addEventListener('open', open);
    if (channel.readyState === 'open') open();
    channel.addEventListener('message', (event) => {
      if (call.channel === channel && typeof event.data === 'string') {
        callLine('chat', call.name, event.data);
      }
    });
    channel.addEventListener('close', () => {
      if (call.channel === channel && call.peer === peer) peer.hangup('the DataChannel closed');
    });
  }

  /** Ends the call here, and tells the peer unless `tell` is false (it is gone). */
  function endCall(reason, tell = true) {
    if (!call.peer) return;
    const peer = call.peer;
    call.peer = null;
    call.channel = null;
    if (tell) peer.hangup(reason);
    else peer.close(reason);
    setCallStatus('idle', 'idle');
    callNotice(`Call with ${call.name} ended: ${reason}.`);
    $('call-text').disabled = true;
    $('call-send').disabled = true;
    $('hangup').disabled = true;
    renderPeers(call.peers);
  }

  if (calls) {
    client.on('signal', (frame) => {
      if (call.peer && frame.from === call.peer.peerId) call.received += 1;
    });
    calls.on('incoming', (peer) => {
      if (call.peer) {
        peer.hangup('busy'); // one call at a time on this page
        return;
      }
      attachCall(peer);
      $('hangup').disabled = false;
      callNotice(`${call.name} is calling.`);
    });
  }
  renderPeers([]);

  $('peers').addEventListener('click', (event) => {
    const button = event.target.closest('button.call');
    if (!button || !calls || call.peer) return;
    const peerId = button.closest('li').dataset.peerId;
    let peer;
    try {
      peer = calls.call(peerId);
    } catch (err) {
      callNotice(`Cannot call: ${err.message}`, 'error');
      return;
    }
    attachCall(peer);
    $('hangup').disabled = false;
    callNotice(`Calling ${call.name}…`);
    attachChannel(peer.createDataChannel('herald-demo'));
  });

  $('call-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const text = $('call-text').value;
    const channel = call.channel;
    if (!text.trim() || !channel || channel.readyState !== 'open') return;
    channel.send(text);
    callLine('chat mine', 'you', text);
    $('call-text').value = '';
  });

  $('hangup').addEventListener('click', () => endCall('you hung up'));

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
    endCall('you left the room'); // the hangup goes out while still in the room
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
    endCall('the page closed');
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
    calls,
    call,
  };

  client.connect();
  openLive(undefined);
})();

// ------------------------------------------------------------------ shared document
// Capability `documents`: a textarea edited together. Every input becomes the smallest edit
// (SharedDocument.replace); remote edits are applied to the textarea with the caret moved
// through them. Positions are code points; the textarea's are UTF-16 units, converted here.
(() => {
  'use strict';
  const { SharedDocument, transformPosition } = window.Herald;
  const $ = (id) => document.getElementById(id);
  const demo = window.heraldDemo;
  const area = $('doc-text');
  const status = $('doc-status');
  let doc = null;

  // UTF-16 index <-> code point index, in `text`.
  const toPoints = (text, units) => Array.from(text.slice(0, units)).length;
  const toUnits = (text, points) => Array.from(text).slice(0, points).join('').length;

  function show(state, text) {
    status.dataset.state = state;
    status.textContent = text;
  }

  function refreshMeta() {
    $('doc-version').textContent = `version ${doc ? doc.version : 0}`;
    const others = doc ? doc.cursors.size : 0;
    $('doc-people').textContent = others === 0 ? 'nobody else here' : `${others} other${others > 1 ? 's' : ''} here`;
  }

  function open(id) {
    if (doc) doc.close();
    doc = new SharedDocument(demo.client, id);
    demo.document = doc;
    show('opening', 'opening…');
    doc.on('open', ({ text }) => {
      area.value = text;
      area.disabled = false;
      show('open', 'open');
      refreshMeta();
    });
    doc.on('change', ({ op, local, text }) => {
      if (!local) {
        // Keep the caret where it was in the text, moved through the remote edit.
        const start = transformPosition(toPoints(area.value, area.selectionStart), op);
        const end = transformPosition(toPoints(area.value, area.selectionEnd), op);
        const focused = document.activeElement === area;
        area.value = text;
        if (focused) area.setSelectionRange(toUnits(text, start), toUnits(text, end));
      }
      refreshMeta();
    });
    doc.on('ack', refreshMeta);
    doc.on('cursors', refreshMeta);
    doc.on('reset', ({ text }) => {
      area.value = text;
      show('open', 'reloaded');
    });
    doc.on('error', ({ code, message }) => show('error', `${code}: ${message}`));
  }

  area.addEventListener('input', () => {
    if (!doc) return;
    doc.replace(area.value);
    const start = toPoints(area.value, area.selectionStart);
    const end = toPoints(area.value, area.selectionEnd);
    doc.setCursor({ anchor: start, head: end });
  });

  $('doc-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const id = $('doc-id').value.trim();
    if (id) open(id);
  });
})();
