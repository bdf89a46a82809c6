/** Bytes of the frame header: `[u16 size incl. header][u16 id]`. */
export const HEADER_SIZE = 4;

/** Largest frame: the size field is a u16 and counts the header. */
export const MAX_FRAME_SIZE = 65535;

/**
 * The only error decoding throws, and the error encoding throws for a value that cannot
 * be written. `code` says what went wrong:
 *
 * - decoding: `Truncated` (frame shorter than its header or fields, or a message that ends
 *   inside a frame), `SizeMismatch` (size field disagrees with the frame's length),
 *   `UnknownId`, `WrongId` (a class's `decode` given another packet), `InvalidString`
 *   (odd UTF-16 length, unpaired surrogate, bad UTF-8), `ListTooLong` (count larger than
 *   the remaining bytes could hold), `TooManyElements` (more than 65,535 field-less list
 *   elements in one frame), `TrailingBytes`, `BadFrameSize` (size field below 4 or above
 *   the reader's limit), `NotBytes` (not a Uint8Array, ArrayBuffer or view);
 * - encoding: `InvalidValue` (wrong type or out of range), `StringTooLong`,
 *   `ListTooLong`, `TooLarge` (frame over 65,535 bytes).
 */
export class PacketError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   */
  constructor(code, message) {
    super(message);
    this.name = 'PacketError';
    /** Machine-readable kind of error (see the class docs). */
    this.code = code;
  }
}

/** Field-less list elements one frame may hold (they occupy no bytes, so the frame's
 * length cannot bound them). */
const __PG_MAX_EMPTY_ELEMENTS = 65535;

/** The bytes of `data` as a Uint8Array (no copy). */
function __pgBytes(data) {
  if (data instanceof Uint8Array) {
    return data;
  }
  if (data instanceof ArrayBuffer) {
    return new Uint8Array(data);
  }
  if (ArrayBuffer.isView(data)) {
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  throw new PacketError('NotBytes', `expected a Uint8Array, ArrayBuffer or ArrayBuffer view, got ${data === null ? 'null' : typeof data}`);
}

/** Bounds-checked cursor over one whole frame; every read throws PacketError, never
 * reads past the frame. */
class __PgReader {
  constructor(bytes) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.id = bytes[2] | (bytes[3] << 8);
    this.pos = HEADER_SIZE;
    this.emptyElements = 0;
  }

  /** Starts reading after checking that `data` is exactly one frame. */
  static open(data) {
    const bytes = __pgBytes(data);
    if (bytes.length < HEADER_SIZE) {
      throw new PacketError('Truncated', `truncated frame: needed ${HEADER_SIZE} bytes, frame has ${bytes.length}`);
    }
    const size = bytes[0] | (bytes[1] << 8);
    if (size !== bytes.length) {
      throw new PacketError('SizeMismatch', `frame size field says ${size} bytes but the frame has ${bytes.length}`);
    }
    return new __PgReader(bytes);
  }

  /** Returns the position of `n` bytes to read and moves past them. */
  take(n) {
    const at = this.pos;
    if (this.bytes.length - at < n) {
      throw new PacketError('Truncated', `truncated frame: needed ${at + n} bytes, frame has ${this.bytes.length}`);
    }
    this.pos = at + n;
    return at;
  }

  bool() { return this.bytes[this.take(1)] !== 0; }
  u8() { return this.bytes[this.take(1)]; }
  i8() { return this.view.getInt8(this.take(1)); }
  i16() { return this.view.getInt16(this.take(2), true); }
  u16() { return this.view.getUint16(this.take(2), true); }
  i32() { return this.view.getInt32(this.take(4), true); }
  u32() { return this.view.getUint32(this.take(4), true); }
  i64() { return this.view.getBigInt64(this.take(8), true); }
  u64() { return this.view.getBigUint64(this.take(8), true); }
  f32() { return this.view.getFloat32(this.take(4), true); }
  f64() { return this.view.getFloat64(this.take(8), true); }

  /**
   * Reads `[u16 count]` and that many elements with `read`, after checking that
   * `count * minElement` bytes remain, so nothing is allocated the frame cannot back.
   */
  list(field, minElement, read) {
    const count = this.u16();
    const remaining = this.bytes.length - this.pos;
    if (count * minElement > remaining) {
      throw new PacketError('ListTooLong', `list ${field} claims ${count} elements but only ${remaining} bytes remain`);
    }
    if (minElement === 0) {
      this.emptyElements += count;
      if (this.emptyElements > __PG_MAX_EMPTY_ELEMENTS) {
        throw new PacketError('TooManyElements', `list ${field}: more than ${__PG_MAX_EMPTY_ELEMENTS} field-less elements in one frame`);
      }
    }
    const list = [];
    for (let i = 0; i < count; i++) {
      list.push(read(this));
    }
    return list;
  }

  /** Returns `value` after checking that the whole frame was read. */
  finish(packet, value) {
    const extra = this.bytes.length - this.pos;
    if (extra !== 0) {
      throw new PacketError('TrailingBytes', `${extra} trailing bytes after packet ${packet}`);
    }
    return value;
  }
}

/** Decodes `data` as the packet `name` (id `id`) with its body reader `read`. */
function __pgDecodeAs(data, id, name, read) {
  const r = __PgReader.open(data);
  if (r.id !== id) {
    throw new PacketError('WrongId', `frame has packet id ${r.id}, expected ${id} (${name})`);
  }
  return r.finish(name, read(r));
}

/** Growable frame buffer that refuses to pass MAX_FRAME_SIZE; checks every value. */
class __PgWriter {
  constructor(id) {
    this.bytes = new Uint8Array(256);
    this.view = new DataView(this.bytes.buffer);
    this.pos = HEADER_SIZE;
    this.id = id;
  }

  /** Returns the position to write `n` bytes at and moves past them. */
  reserve(n, field) {
    const at = this.pos;
    const end = at + n;
    if (end > MAX_FRAME_SIZE) {
      throw new PacketError('TooLarge', `frame would exceed ${MAX_FRAME_SIZE} bytes at ${field}`);
    }
    if (end > this.bytes.length) {
      const grown = new Uint8Array(Math.min(MAX_FRAME_SIZE, Math.max(end, this.bytes.length * 2)));
      grown.set(this.bytes.subarray(0, at));
      this.bytes = grown;
      this.view = new DataView(grown.buffer);
    }
    this.pos = end;
    return at;
  }

  /** The frame, header filled in, as a Uint8Array of exactly its size. */
  finish() {
    this.view.setUint16(0, this.pos, true);
    this.view.setUint16(2, this.id, true);
    return this.bytes.slice(0, this.pos);
  }

  // Each method checks the value first, then reserves: reserve() may replace
  // this.bytes and this.view, so they are read only after it.
  bool(value, field) {
    const v = value ?? false;
    if (typeof v !== 'boolean') {
      throw __pgInvalid(field, value, 'a boolean');
    }
    const at = this.reserve(1, field);
    this.bytes[at] = v ? 1 : 0;
  }

  u8(value, field) {
    const v = __pgInt(value, field, 0, 0xff, 'a byte');
    const at = this.reserve(1, field);
    this.bytes[at] = v;
  }

  i8(value, field) {
    const v = __pgInt(value, field, -0x80, 0x7f, 'an sbyte');
    const at = this.reserve(1, field);
    this.view.setInt8(at, v);
  }

  i16(value, field) {
    const v = __pgInt(value, field, -0x8000, 0x7fff, 'a short');
    const at = this.reserve(2, field);
    this.view.setInt16(at, v, true);
  }

  u16(value, field) {
    const v = __pgInt(value, field, 0, 0xffff, 'a ushort');
    const at = this.reserve(2, field);
    this.view.setUint16(at, v, true);
  }

  i32(value, field) {
    const v = __pgInt(value, field, -0x80000000, 0x7fffffff, 'an int');
    const at = this.reserve(4, field);
    this.view.setInt32(at, v, true);
  }

  u32(value, field) {
    const v = __pgInt(value, field, 0, 0xffffffff, 'a uint');
    const at = this.reserve(4, field);
    this.view.setUint32(at, v, true);
  }

  i64(value, field) {
    const v = __pgBig(value, field, true);
    const at = this.reserve(8, field);
    this.view.setBigInt64(at, v, true);
  }

  u64(value, field) {
    const v = __pgBig(value, field, false);
    const at = this.reserve(8, field);
    this.view.setBigUint64(at, v, true);
  }

  f32(value, field) {
    const v = __pgFloat(value, field);
    const at = this.reserve(4, field);
    this.view.setFloat32(at, v, true);
  }

  f64(value, field) {
    const v = __pgFloat(value, field);
    const at = this.reserve(8, field);
    this.view.setFloat64(at, v, true);
  }

  /** Writes `[u16 count]` and each element of `list` with `write`. */
  list(list, field, write) {
    const v = list ?? [];
    if (!Array.isArray(v)) {
      throw __pgInvalid(field, list, 'an array');
    }
    if (v.length > 0xffff) {
      throw new PacketError('ListTooLong', `list ${field} has ${v.length} elements, more than 65535`);
    }
    const at = this.reserve(2, field);
    this.view.setUint16(at, v.length, true);
    for (const element of v) {
      if (element === null || typeof element !== 'object') {
        throw __pgInvalid(field, element, 'an element object');
      }
      write(this, element);
    }
  }
}

/** The checked string of a string field (`undefined` and `null` are ""). */
function __pgString(value, field) {
  const v = value ?? '';
  if (typeof v !== 'string') {
    throw __pgInvalid(field, value, 'a string');
  }
  return v;
}

function __pgInvalid(field, value, expected) {
  const shown = typeof value === 'bigint' ? `${value}n` : typeof value === 'string' ? JSON.stringify(value) : String(value);
  return new PacketError('InvalidValue', `${field}: expected ${expected}, got ${shown.length > 40 ? `${shown.slice(0, 40)}...` : shown}`);
}

/** The checked integer of an integer field (`undefined` and `null` are 0). */
function __pgInt(value, field, min, max, type) {
  const v = value ?? 0;
  if (!Number.isInteger(v) || v < min || v > max) {
    throw __pgInvalid(field, value, `${type} (an integer from ${min} to ${max})`);
  }
  return v;
}

/** The checked BigInt of a long/ulong field; a safe-integer Number is accepted too. */
function __pgBig(value, field, signed) {
  let v = value ?? 0n;
  if (typeof v === 'number' && Number.isSafeInteger(v)) {
    v = BigInt(v);
  }
  if (typeof v !== 'bigint' || (signed ? BigInt.asIntN(64, v) : BigInt.asUintN(64, v)) !== v) {
    throw __pgInvalid(field, value, signed ? 'a long (a BigInt from -2^63 to 2^63-1)' : 'a ulong (a BigInt from 0 to 2^64-1)');
  }
  return v;
}

function __pgFloat(value, field) {
  const v = value ?? 0;
  if (typeof v !== 'number') {
    throw __pgInvalid(field, value, 'a number');
  }
  return v;
}

/**
 * Cuts one WebSocket message (or any buffer holding only whole frames) into frames.
 * The frames are views of `data`, not copies.
 *
 * @throws {PacketError} `Truncated` if the buffer ends inside a frame, `BadFrameSize` if a
 * size field is below 4; `NotBytes`.
 */
export function splitFrames(data) {
  const bytes = __pgBytes(data);
  const frames = [];
  let at = 0;
  while (at < bytes.length) {
    const left = bytes.length - at;
    if (left < HEADER_SIZE) {
      throw new PacketError('Truncated', `buffer ends inside a frame header: ${left} bytes left`);
    }
    const size = bytes[at] | (bytes[at + 1] << 8);
    if (size < HEADER_SIZE) {
      throw new PacketError('BadFrameSize', `frame size field ${size} is smaller than the ${HEADER_SIZE}-byte header`);
    }
    if (size > left) {
      throw new PacketError('Truncated', `buffer ends inside a frame: it needs ${size} bytes, ${left} left`);
    }
    frames.push(bytes.subarray(at, at + size));
    at += size;
  }
  return frames;
}

/**
 * Reassembles frames from a byte stream delivered in chunks of any size (WebSocket
 * messages, socket reads): `push` a chunk, get back the frames it completes. Holds at
 * most one partial frame, never more than `maxFrameSize` bytes.
 *
 * A frame that lies inside one chunk is returned as a view of that chunk; a frame
 * assembled from several chunks is a fresh copy.
 */
export class FrameReader {
  #maxFrameSize;
  #header = new Uint8Array(HEADER_SIZE);
  /** @type {Uint8Array | null} the frame being assembled, once its size is known */
  #frame = null;
  /** bytes of the partial frame (or header) received so far */
  #have = 0;
  /** @type {PacketError | null} set once the stream is out of step */
  #error = null;

  /**
   * @param {number} [maxFrameSize] largest frame accepted, 4 to 65,535 (default 65,535).
   * @throws {RangeError} if `maxFrameSize` is out of range.
   */
  constructor(maxFrameSize = MAX_FRAME_SIZE) {
    if (!Number.isInteger(maxFrameSize) || maxFrameSize < HEADER_SIZE || maxFrameSize > MAX_FRAME_SIZE) {
      throw new RangeError(`maxFrameSize must be an integer from ${HEADER_SIZE} to ${MAX_FRAME_SIZE}`);
    }
    this.#maxFrameSize = maxFrameSize;
  }

  /** Bytes of an incomplete frame held back for the next chunk. */
  get buffered() {
    return this.#have;
  }

  /**
   * Adds a chunk of the stream; returns the frames it completes, in order.
   *
   * @throws {PacketError} `BadFrameSize` if a size field is below 4 or above the limit.
   * The stream is then out of step: close the connection. Every later `push` throws the
   * same error. `NotBytes` if `chunk` is not bytes (the reader stays usable).
   */
  push(chunk) {
    if (this.#error !== null) {
      throw this.#error;
    }
    const bytes = __pgBytes(chunk);
    const frames = [];
    let at = 0;
    while (at < bytes.length) {
      if (this.#frame === null) {
        if (this.#have === 0 && bytes.length - at >= HEADER_SIZE) {
          // Fast path: a frame starts here; hand it out as a view if it is all here.
          const size = this.#checkSize(bytes[at] | (bytes[at + 1] << 8));
          if (bytes.length - at >= size) {
            frames.push(bytes.subarray(at, at + size));
            at += size;
            continue;
          }
          this.#frame = new Uint8Array(size);
        } else {
          const n = Math.min(HEADER_SIZE - this.#have, bytes.length - at);
          this.#header.set(bytes.subarray(at, at + n), this.#have);
          this.#have += n;
          at += n;
          if (this.#have < HEADER_SIZE) {
            break;
          }
          this.#frame = new Uint8Array(this.#checkSize(this.#header[0] | (this.#header[1] << 8)));
          this.#frame.set(this.#header);
        }
      }
      const n = Math.min(this.#frame.length - this.#have, bytes.length - at);
      this.#frame.set(bytes.subarray(at, at + n), this.#have);
      this.#have += n;
      at += n;
      if (this.#have === this.#frame.length) {
        frames.push(this.#frame);
        this.#frame = null;
        this.#have = 0;
      }
    }
    return frames;
  }

  #checkSize(size) {
    if (size < HEADER_SIZE) {
      this.#error = new PacketError('BadFrameSize', `frame size field ${size} is smaller than the ${HEADER_SIZE}-byte header`);
    } else if (size > this.#maxFrameSize) {
      this.#error = new PacketError('BadFrameSize', `frame of ${size} bytes exceeds the ${this.#maxFrameSize}-byte limit`);
    } else {
      return size;
    }
    throw this.#error;
  }
}

/**
 * Decodes frames and calls the handler registered for each packet's id.
 *
 * ```js
 * const dispatcher = new PacketDispatcher()
 *   .on(PacketId.S_Chat, (packet) => console.log(packet.chat));
 * const reader = new FrameReader();
 * socket.binaryType = 'arraybuffer';
 * socket.onmessage = (event) => {
 *   for (const frame of reader.push(event.data)) dispatcher.dispatch(frame);
 * };
 * ```
 */
export class PacketDispatcher {
  #handlers = new Map();
  #unhandled = null;

  /**
   * Registers `handler(packet)` for packet id `id` (replacing any earlier one).
   *
   * @returns {this}
   * @throws {PacketError} `UnknownId` if no packet has this id.
   * @throws {TypeError} if `handler` is not a function.
   */
  on(id, handler) {
    if (!__pgIsPacketId(id)) {
      throw new PacketError('UnknownId', `unknown packet id ${id}`);
    }
    if (typeof handler !== 'function') {
      throw new TypeError('handler must be a function');
    }
    this.#handlers.set(id, handler);
    return this;
  }

  /** Removes the handler of `id`. @returns {this} */
  off(id) {
    this.#handlers.delete(id);
    return this;
  }

  /**
   * Sets `handler(packet)` for packets without their own handler (`null` to drop them).
   *
   * @returns {this}
   */
  onUnhandled(handler) {
    if (handler !== null && typeof handler !== 'function') {
      throw new TypeError('handler must be a function or null');
    }
    this.#unhandled = handler;
    return this;
  }

  /**
   * Decodes one whole frame and calls its handler; returns the packet.
   *
   * @throws {PacketError} if the frame is malformed (no handler is called). Whatever a
   * handler throws propagates unchanged.
   */
  dispatch(frame) {
    const r = __PgReader.open(frame);
    const packet = __pgReadPacket(r);
    const handler = this.#handlers.get(r.id) ?? this.#unhandled;
    if (handler !== null) {
      handler(packet);
    }
    return packet;
  }
}

/**
 * Decodes one whole frame (header included) into an instance of its packet class.
 *
 * Never reads past the frame and allocates no more than its length justifies.
 *
 * @throws {PacketError} on any malformed frame, and only then.
 */
export function decodePacket(frame) {
  return __pgReadPacket(__PgReader.open(frame));
}
