// k6/websockets: the browser-like WebSocket k6 offers, over a small RFC 6455
// client written here because the node that Debian ships (18) has none. It
// behaves as k6's does (internal/js/modules/k6/websockets) where the scripts
// can tell: events are open, message (data is a string for text frames,
// timestamp is when the frame was read, not when the handler runs), error
// (with .error) and close (with .code when the peer sent one); the metrics'
// url and name tags are the whole URL, query string included, unless
// params.tags.name replaces both; server pings are answered by itself; a
// close frame other than 1000/1001, or a connection that ends without one,
// fires error before close, but a connection reset or a protocol error fires
// only close, without a code; an exception in a handler fails the iteration.
// Like k6's, the class has no CONNECTING/OPEN/… constants: readyState is a
// number.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { ctx, notInit, record, sample } from './context.mjs';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;
const EVENTS = ['open', 'message', 'error', 'close', 'ping', 'pong'];

export class WebSocket {
  constructor(url, protocols, params) {
    notInit('opening a WebSocket');
    const u = new URL(url);
    if (u.protocol !== 'ws:' && u.protocol !== 'wss:') {
      throw new Error(`WebSocket requires url with scheme ws or wss, but got "${u.protocol.slice(0, -1)}"`);
    }
    this.url = url;
    this.readyState = CONNECTING;
    this.binaryType = 'blob';
    this.bufferedAmount = 0;
    this.protocol = '';
    this.extensions = [];
    this._on = {};
    this._listeners = Object.fromEntries(EVENTS.map((t) => [t, []]));
    this._buf = Buffer.alloc(0);
    this._frags = null;
    this._gotClose = false;
    this._closeCode = 0;
    this._closeReason = '';
    this._ownCode = undefined; // the code of the script's own close()
    this._pings = 0;
    const tags = (params && params.tags) || {};
    this._tags = { ...tags, url: tags.name || url, name: tags.name || url };

    const key = randomBytes(16).toString('base64');
    const headers = { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13',
      'Sec-WebSocket-Key': key, ...((params && params.headers) || {}) };
    if (protocols && protocols.length) headers['Sec-WebSocket-Protocol'] = [].concat(protocols).join(', ');
    const started = performance.now();
    const secure = u.protocol === 'wss:';
    const req = (secure ? https : http).request({ hostname: u.hostname, port: u.port || (secure ? 443 : 80),
      path: u.pathname + u.search, headers });
    req.on('upgrade', (res, socket, head) => {
      if (res.headers['sec-websocket-accept'] !== createHash('sha1').update(key + GUID).digest('base64')) {
        socket.destroy();
        this._failed('websocket: bad handshake: wrong Sec-WebSocket-Accept');
        return;
      }
      this._socket = socket;
      socket.setNoDelay(true);
      sample('ws_connecting', 'trend', performance.now() - started, this._tags);
      sample('ws_sessions', 'counter', 1, this._tags);
      this.readyState = OPEN;
      this._dispatch('open', {});
      if (head.length) this._read(head);
      socket.on('data', (d) => this._read(d));
      socket.on('error', (e) => { this._err = e; });
      socket.on('close', () => this._ended());
    });
    req.on('response', (res) => {
      res.resume();
      this._failed(`websocket: bad handshake (HTTP ${res.statusCode})`);
    });
    req.on('error', (e) => this._failed(e.message));
    req.end();
  }

  addEventListener(type, fn) {
    if (typeof fn !== 'function') throw new Error(`handler for event type "${type}" isn't a callable function`);
    if (!this._listeners[type]) throw new Error(`unknown event type "${type}"`);
    this._listeners[type].push(fn);
  }

  send(data) {
    if (this.readyState !== OPEN) throw new Error('InvalidStateError');
    if (typeof data !== 'string') throw new Error('k6 shim: only text frames are supported');
    record({ k: 'ws_send', url: this._tags.url, data });
    sample('ws_msgs_sent', 'counter', 1, this._tags);
    this._write(0x1, Buffer.from(data, 'utf8'));
  }

  ping() {
    if (this.readyState !== OPEN) throw new Error('InvalidStateError');
    this._write(0x9, Buffer.from(String(this._pings++)));
  }

  close(code, reason) {
    if (this.readyState === CLOSING || this.readyState === CLOSED) return;
    code = code || 1000;
    if (code !== 1000 && (code < 3000 || code > 4999)) {
      throw new Error(`InvalidAccessError: the close code must be either 1000, or between 3000 and 4999. ${code} is neither`);
    }
    const text = Buffer.from(reason || '', 'utf8');
    if (text.length > 123) throw new Error('SyntaxError: the close reason must not be greater than 123 bytes');
    this.readyState = CLOSING;
    this._ownCode = code;
    const p = Buffer.alloc(2 + text.length);
    p.writeUInt16BE(code, 0);
    text.copy(p, 2);
    this._write(0x8, p);
    // The server closes the TCP connection after answering; do not wait for
    // one that does not.
    this._closeTimer = setTimeout(() => this._socket.destroy(), 5000);
  }

  _dispatch(type, props) {
    const ev = { type, target: this, timestamp: Date.now(), ...props };
    const fns = (this._on[type] ? [this._on[type]] : []).concat(this._listeners[type]);
    for (const fn of fns) {
      try {
        fn(ev);
      } catch (e) {
        record({ k: 'exception', role: ctx.role, where: `WebSocket ${type} handler`, message: String((e && e.stack) || e) });
        if (this._socket) this._socket.destroy();
        return;
      }
    }
  }

  _write(op, payload) {
    const mask = randomBytes(4);
    const n = payload.length;
    let head;
    if (n < 126) {
      head = Buffer.from([0x80 | op, 0x80 | n]);
    } else if (n < 65536) {
      head = Buffer.alloc(4);
      head[1] = 0x80 | 126;
      head.writeUInt16BE(n, 2);
    } else {
      head = Buffer.alloc(10);
      head[1] = 0x80 | 127;
      head.writeBigUInt64BE(BigInt(n), 2);
    }
    head[0] = 0x80 | op;
    const body = Buffer.alloc(n);
    for (let i = 0; i < n; i++) body[i] = payload[i] ^ mask[i & 3];
    this._socket.write(Buffer.concat([head, mask, body]));
  }

  _read(chunk) {
    const at = performance.timeOrigin + performance.now();
    this._buf = this._buf.length ? Buffer.concat([this._buf, chunk]) : chunk;
    while (this._buf.length >= 2 && this.readyState !== CLOSED) {
      const b = this._buf;
      let n = b[1] & 0x7f;
      let off = 2;
      if (n === 126) {
        if (b.length < 4) return;
        n = b.readUInt16BE(2);
        off = 4;
      } else if (n === 127) {
        if (b.length < 10) return;
        n = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      if (b[1] & 0x80) off += 4;
      if (b.length < off + n) return;
      const payload = b.subarray(off, off + n);
      this._buf = b.subarray(off + n);
      if (b[0] & 0x70 || b[1] & 0x80) {
        this._protocolError('reserved bits set or masked frame from the server');
        return;
      }
      this._frame(Boolean(b[0] & 0x80), b[0] & 0x0f, payload, at);
    }
  }

  _frame(fin, op, p, at) {
    switch (op) {
      case 0x0:
        if (!this._frags) return this._protocolError('continuation without a message');
        this._frags.push(p);
        if (fin) {
          const all = Buffer.concat(this._frags);
          this._frags = null;
          this._message(this._fragOp, all, at);
        }
        return undefined;
      case 0x1:
      case 0x2:
        if (this._frags) return this._protocolError('new message inside a fragmented one');
        if (fin) this._message(op, p, at);
        else {
          this._frags = [p];
          this._fragOp = op;
        }
        return undefined;
      case 0x8:
        this._gotClose = true;
        this._closeCode = p.length >= 2 ? p.readUInt16BE(0) : 1005;
        this._closeReason = p.subarray(2).toString('utf8');
        if (this.readyState === OPEN) this._write(0x8, p.subarray(0, Math.min(2, p.length)));
        this.readyState = CLOSING;
        this._socket.end();
        return undefined;
      case 0x9:
        this._write(0xa, p);
        this._dispatch('ping', {});
        return undefined;
      case 0xa:
        this._dispatch('pong', {});
        return undefined;
      default:
        return this._protocolError(`unknown opcode ${op}`);
    }
  }

  _message(op, p, at) {
    if (this.readyState !== OPEN) return;
    sample('ws_msgs_received', 'counter', 1, this._tags);
    const data = op === 0x1 ? p.toString('utf8') : p.buffer.slice(p.byteOffset, p.byteOffset + p.length);
    this._dispatch('message', { data, origin: this.url, timestamp: at });
  }

  _protocolError(why) {
    this._err = new Error(`websocket: protocol error: ${why}`);
    this._socket.destroy();
  }

  // _ended runs when the TCP connection is gone, whoever closed it. As in
  // k6's readPump, only a close error (a close frame with another code than
  // 1000/1001, or the stream ending without one: 1006) fires error; a reset
  // or a protocol error closes quietly, with the code of the script's own
  // close() if it called it.
  _ended() {
    if (this.readyState === CLOSED) return;
    clearTimeout(this._closeTimer);
    this.readyState = CLOSED;
    if (this._gotClose) {
      if (this._closeCode !== 1000 && this._closeCode !== 1001) {
        this._dispatch('error', { error: `websocket: close ${this._closeCode}: ${this._closeReason}` });
      }
      this._dispatch('close', { code: this._closeCode, reason: this._closeReason });
    } else if (this._err) {
      this._dispatch('close', { code: this._ownCode, reason: '' });
    } else {
      this._dispatch('error', { error: 'websocket: close 1006 (abnormal closure): unexpected EOF' });
      this._dispatch('close', { code: 1006, reason: '' });
    }
  }

  // _failed ends a connection that never opened.
  _failed(message) {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSED;
    this._dispatch('error', { error: message });
    this._dispatch('close', { reason: '' });
  }
}

for (const t of EVENTS) {
  Object.defineProperty(WebSocket.prototype, `on${t}`, {
    get() { return this._on[t] || null; },
    set(fn) { this._on[t] = fn; },
  });
}

export default { WebSocket };
