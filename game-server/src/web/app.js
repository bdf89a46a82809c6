// The browser client of the GameRoom demo: connects to the game over WebSocket on the
// port that served this page, draws every player of the room as a dot, sends C_Move for
// the arrow keys and WASD, and C_Chat from the chat box. `?say=TEXT` sends one chat as
// soon as the player has entered (for scripts and tests).
//
// The frames are the TCP port's frames, carried in binary WebSocket messages; packets.js
// is generated from the server's PDL.xml by packet-gen.

import { C_Chat, C_Move, FrameReader, PacketDispatcher, PacketId } from './packets.js';

/** Positions run from -EXTENT to EXTENT on x and z (as dummy-client's moves do). */
const EXTENT = 50;
/** World units per key press. */
const STEP = 2;
/** Fewest milliseconds between two moves sent while a key is held. */
const MOVE_EVERY_MS = 50;
/** Chat lines kept on the page. */
const LOG_LINES = 200;

const canvas = document.getElementById('world');
const ctx = canvas.getContext('2d');
const status = document.getElementById('status');
const log = document.getElementById('log');
const count = document.getElementById('players');
const chatForm = document.getElementById('chat');
const chatText = document.getElementById('text');

/** @type {Map<number, {x: number, z: number}>} every player in the room, by id */
const players = new Map();
/** Our player id, once the server's S_PlayerList said which one is us. */
let me = null;
let sayOnEnter = new URLSearchParams(location.search).get('say');
let lastMove = 0;
let drawQueued = false;

const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
const socket = new WebSocket(`${scheme}//${location.host}/ws`);
socket.binaryType = 'arraybuffer';
const reader = new FrameReader();

const dispatcher = new PacketDispatcher()
  .on(PacketId.S_PlayerList, (packet) => {
    // A big room comes as several lists; the first one holds us.
    for (const p of packet.players) {
      players.set(p.playerId, { x: p.posX, z: p.posZ });
      if (p.isSelf) {
        me = p.playerId;
      }
    }
    if (me !== null) {
      entered();
    }
  })
  .on(PacketId.S_BroadcastEnterGame, (packet) => {
    players.set(packet.playerId, { x: packet.posX, z: packet.posZ });
    if (packet.playerId !== me) {
      note(`player ${packet.playerId} entered`);
    }
  })
  .on(PacketId.S_BroadcastLeaveGame, (packet) => {
    players.delete(packet.playerId);
    note(`player ${packet.playerId} left`);
  })
  .on(PacketId.S_BroadcastMove, (packet) => {
    players.set(packet.playerId, { x: packet.posX, z: packet.posZ });
  })
  .on(PacketId.S_Chat, (packet) => {
    line(`player ${packet.playerId}: ${packet.chat}`, packet.playerId === me ? 'me' : '');
  })
  .onUnhandled(null);

socket.onopen = () => {
  status.textContent = 'connected, entering the room…';
};
socket.onmessage = (event) => {
  try {
    for (const frame of reader.push(event.data)) {
      dispatcher.dispatch(frame);
    }
  } catch (error) {
    status.textContent = `bad data from the server: ${error.message}`;
    socket.close(1002, 'bad frame');
  }
  queueDraw();
};
socket.onclose = (event) => {
  const why = event.reason ? `: ${event.reason}` : '';
  status.textContent = `disconnected (code ${event.code}${why}); reload to play again`;
  document.body.dataset.state = 'closed';
};
socket.onerror = () => {
  status.textContent = 'cannot reach the game server';
};

/** The first S_PlayerList arrived: we are in the room. */
function entered() {
  if (document.body.dataset.state === 'entered') {
    return;
  }
  document.body.dataset.state = 'entered';
  document.body.dataset.me = String(me);
  status.textContent = `you are player ${me}`;
  if (sayOnEnter) {
    send(new C_Chat({ chat: sayOnEnter }));
    sayOnEnter = null;
  }
}

function send(packet) {
  if (socket.readyState === WebSocket.OPEN) {
    socket.send(packet.encode());
  }
}

chatForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = chatText.value.trim();
  if (text) {
    send(new C_Chat({ chat: text }));
    chatText.value = '';
  }
});

const KEYS = {
  ArrowLeft: [-1, 0], a: [-1, 0], A: [-1, 0],
  ArrowRight: [1, 0], d: [1, 0], D: [1, 0],
  ArrowUp: [0, -1], w: [0, -1], W: [0, -1],
  ArrowDown: [0, 1], s: [0, 1], S: [0, 1],
};

document.addEventListener('keydown', (event) => {
  const direction = KEYS[event.key];
  if (!direction || event.target === chatText || me === null) {
    return;
  }
  event.preventDefault();
  const now = performance.now();
  if (now - lastMove < MOVE_EVERY_MS) {
    return;
  }
  lastMove = now;
  const here = players.get(me) ?? { x: 0, z: 0 };
  const clamp = (v) => Math.max(-EXTENT, Math.min(EXTENT, v));
  // The server's S_BroadcastMove moves our dot, as it moves everyone's.
  send(new C_Move({
    posX: clamp(here.x + direction[0] * STEP),
    posY: 0,
    posZ: clamp(here.z + direction[1] * STEP),
  }));
});

function note(text) {
  line(text, 'note');
}

function line(text, kind) {
  const item = document.createElement('li');
  item.textContent = text;
  if (kind) {
    item.className = kind;
  }
  log.append(item);
  while (log.children.length > LOG_LINES) {
    log.firstElementChild.remove();
  }
  log.scrollTop = log.scrollHeight;
}

function queueDraw() {
  if (!drawQueued) {
    drawQueued = true;
    requestAnimationFrame(draw);
  }
}

function draw() {
  drawQueued = false;
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  const toX = (x) => ((x + EXTENT) / (2 * EXTENT)) * width;
  const toY = (z) => ((z + EXTENT) / (2 * EXTENT)) * height;
  ctx.font = '10px system-ui, sans-serif';
  for (const [id, p] of players) {
    if (id === me) {
      continue;
    }
    ctx.fillStyle = `hsl(${(id * 47) % 360} 60% 45%)`;
    dot(toX(p.x), toY(p.z), 4);
  }
  const mine = players.get(me);
  if (mine) {
    ctx.fillStyle = '#0a5';
    dot(toX(mine.x), toY(mine.z), 7);
    ctx.fillText('you', toX(mine.x) + 9, toY(mine.z) + 3);
  }
  count.textContent = `players: ${players.size}`;
}

function dot(x, y, r) {
  ctx.beginPath();
  ctx.arc(x, y, r, 0, 2 * Math.PI);
  ctx.fill();
}

draw();
