// Run by tests/js_roundtrip.rs with node:
//   node roundtrip.mjs ALL_TYPES_MJS UTF8_MJS NESTED_MJS FRAMES_TXT
// The first three are generated modules (tests/generated/*/packets.js and one for a schema
// of nested field-less lists); FRAMES_TXT holds one frame per line, written by the Rust
// side: `good SCHEMA HEX` or `bad SCHEMA HEX`.
//
// Prints, in order:
//   one line per input frame: `OK HEX` (decoded, checked against the expected values
//   below, re-encoded) or `REJECT CODE` (PacketError) or `WRONG ...` (anything else);
//   `JS SCHEMA HEX` for each packet built here, for Rust to decode;
//   `CHECK NAME` for each JS-side check that passed, `FAIL NAME: ...` for each that did not.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const [allTypesPath, utf8Path, nestedPath, framesPath] = process.argv.slice(2);
const A = await import(pathToFileURL(allTypesPath).href);
const U = await import(pathToFileURL(utf8Path).href);
const N = await import(pathToFileURL(nestedPath).href);
const modules = { all_types: A, utf8: U };

const hex = (bytes) => Buffer.from(bytes).toString('hex').toUpperCase();
const unhex = (text) => new Uint8Array(Buffer.from(text, 'hex'));

// The values of the frames Rust encodes (js_roundtrip.rs, `good_frames`), in order.
const expected = {
  all_types: [
    new A.C_Empty(),
    new A.C_AllTypes({
      flag: true,
      level: 255,
      delta: -128,
      HP: -32768,
      mp: 65535,
      playerId: -2147483648,
      gold: 4294967295,
      accountId: -(2n ** 63n),
      sessionKey: 2n ** 64n - 1n,
      posX: 2 ** -126,
      exactTime: Math.PI,
      nickName: 'Rust ✓ 😀 한글',
    }),
    new A.C_AllTypes(),
    new A.S_Inventory({
      ownerId: -3,
      items: [
        { itemId: 1, name: '검', attributes: [] },
        {
          itemId: 2,
          name: '⚔ 엑스칼리버 🐉',
          attributes: [
            { kind: 7, value: -0 },
            { kind: 8, value: Infinity },
          ],
        },
      ],
      markers: [{}, {}, {}, {}, {}],
      note: '\uFEFF끝 🎮',
    }),
    new A.S_Type({ type: 77, loops: [{ match: 1 }, { match: 2 }, { match: 255 }] }),
    new A.C_AllTypes({
      level: 1,
      posX: -1.5,
      exactTime: 1e300,
      accountId: 1n,
      sessionKey: 2n ** 63n,
      nickName: '가😀'.repeat(3333) + 'x',
    }),
  ],
  utf8: [
    new U.C_Chat({ chat: '안녕하세요 👋' }),
    new U.S_Chat({
      playerId: -1,
      chat: '\uFEFFBOM stays',
      mentions: [{ nick: '철수' }, { nick: '🦀' }, { nick: '' }],
    }),
    new U.S_Chat(),
  ],
};

// 1. Frames from Rust: decode, compare, re-encode; malformed ones must be rejected with
// a PacketError.
const goodFrames = [];
const seen = { all_types: 0, utf8: 0 };
for (const line of readFileSync(framesPath, 'utf8').split('\n')) {
  if (line.trim() === '') {
    continue;
  }
  const [kind, schema, text] = line.trim().split(' ');
  const m = modules[schema];
  const frame = unhex(text ?? '');
  try {
    const packet = m.decodePacket(frame);
    if (kind === 'good') {
      assert.deepStrictEqual(packet, expected[schema][seen[schema]++]);
      assert.deepStrictEqual(packet.constructor.decode(frame), packet);
      goodFrames.push({ m, frame });
    }
    console.log(`OK ${hex(packet.encode())}`);
  } catch (e) {
    console.log(e instanceof m.PacketError ? `REJECT ${e.code}` : `WRONG ${e?.name}: ${e?.message}`);
  }
}

// 2. Packets built here, for Rust to decode (js_roundtrip.rs, `js_built`).
const built = [
  ['all_types', new A.C_AllTypes({
    flag: true,
    level: 200,
    delta: -100,
    HP: -1234,
    mp: 65000,
    playerId: -7,
    gold: 4000000000,
    accountId: -1234567890123n,
    sessionKey: 18000000000000000000n,
    posX: 1.25,
    exactTime: -2.5,
    nickName: 'JS é😀 \uD800 한',
  })],
  ['all_types', new A.S_Inventory({
    ownerId: 99,
    items: [
      { itemId: 5, name: 'sword', attributes: [{ kind: 3, value: 0.5 }] },
      { itemId: 6, name: '방패' },
    ],
    markers: [{}, {}],
    note: undefined,
  })],
  ['all_types', new A.C_Empty()],
  ['all_types', new A.C_AllTypes({ accountId: 42 })],
  ['utf8', new U.S_Chat({ playerId: 7, chat: 'lone \uDC00 low', mentions: [{ nick: '영희' }] })],
  ['utf8', new U.C_Chat({ chat: '👋'.repeat(16000) })],
];
for (const [schema, packet] of built) {
  console.log(`JS ${schema} ${hex(packet.encode())}`);
}

// 3. JS-side checks.
function check(name, body) {
  try {
    body();
    console.log(`CHECK ${name}`);
  } catch (e) {
    console.log(`FAIL ${name}: ${e?.stack ?? e}`.replaceAll('\n', ' | '));
  }
}

function throwsPacketError(m, code, body) {
  assert.throws(body, (e) => {
    assert.ok(e instanceof m.PacketError, `expected PacketError ${code}, got ${e?.name}: ${e?.message}`);
    assert.equal(e.code, code, e.message);
    return true;
  });
}

const stream = new Uint8Array(goodFrames.flatMap(({ frame }) => [...frame]));
const streamFrames = goodFrames.map(({ frame }) => frame);

check('frame_reader_reassembles_any_chunking', () => {
  for (const step of [1, 2, 3, 5, 7, 64, 1000, stream.length]) {
    const reader = new A.FrameReader();
    const out = [];
    for (let at = 0; at < stream.length; at += step) {
      out.push(...reader.push(stream.subarray(at, at + step)));
    }
    assert.equal(reader.buffered, 0);
    assert.deepStrictEqual(out.map(hex), streamFrames.map(hex), `chunks of ${step}`);
  }
  const reader = new A.FrameReader();
  assert.deepStrictEqual(reader.push(stream.buffer.slice(0, 3)), []);
  assert.equal(reader.buffered, 3);
});

check('frame_reader_rejects_bad_sizes_and_stays_failed', () => {
  const small = new A.FrameReader(16);
  assert.deepStrictEqual(small.push(new Uint8Array([17, 0, 1])), []);
  assert.equal(small.buffered, 3);
  throwsPacketError(A, 'BadFrameSize', () => small.push(new Uint8Array([0])));
  // The stream is out of step from now on, even for a good frame.
  throwsPacketError(A, 'BadFrameSize', () => small.push(new Uint8Array([4, 0, 1, 0])));
  const tiny = new A.FrameReader();
  throwsPacketError(A, 'BadFrameSize', () => tiny.push(new Uint8Array([4, 0, 1, 0, 3, 0, 1, 0])));
  assert.throws(() => new A.FrameReader(70000), RangeError);
  throwsPacketError(A, 'NotBytes', () => new A.FrameReader().push('text'));
});

check('split_frames', () => {
  assert.deepStrictEqual(A.splitFrames(stream).map(hex), streamFrames.map(hex));
  assert.deepStrictEqual(A.splitFrames(new Uint8Array(0)), []);
  throwsPacketError(A, 'Truncated', () => A.splitFrames(stream.subarray(0, stream.length - 1)));
  throwsPacketError(A, 'Truncated', () => A.splitFrames(new Uint8Array([4, 0])));
  throwsPacketError(A, 'BadFrameSize', () => A.splitFrames(new Uint8Array([1, 0, 1, 0])));
});

check('dispatcher_calls_the_registered_handler', () => {
  const calls = [];
  const dispatcher = new A.PacketDispatcher()
    .on(A.PacketId.S_Inventory, (p) => calls.push(`inventory ${p.items.length}`))
    .on(A.PacketId.C_AllTypes, (p) => calls.push(`all ${p.level}`))
    .onUnhandled((p) => calls.push(`other ${p.constructor.NAME}`));
  for (const frame of A.splitFrames(stream.slice(0, goodFrames[0].frame.length + goodFrames[1].frame.length))) {
    dispatcher.dispatch(frame);
  }
  dispatcher.off(A.PacketId.C_AllTypes).onUnhandled(null);
  dispatcher.dispatch(new A.C_AllTypes().encode());
  dispatcher.dispatch(new A.S_Inventory({ items: [{ itemId: 1 }] }).encode());
  assert.deepStrictEqual(calls, ['other C_Empty', 'all 255', 'inventory 1']);
  throwsPacketError(A, 'UnknownId', () => dispatcher.on(99, () => {}));
  throwsPacketError(A, 'Truncated', () => dispatcher.dispatch(new Uint8Array([4, 0])));
  assert.throws(() => dispatcher.on(A.PacketId.C_Empty, 'nope'), TypeError);
});

check('decode_rejects_wrong_input_with_packet_error', () => {
  for (const value of [undefined, null, 'abc', 5, {}, [4, 0, 1, 0]]) {
    throwsPacketError(A, 'NotBytes', () => A.decodePacket(value));
  }
  throwsPacketError(A, 'WrongId', () => A.S_Type.decode(new A.C_Empty().encode()));
  // Other views of the same bytes decode alike.
  const frame = new A.C_AllTypes({ level: 9 }).encode();
  const padded = new Uint8Array(frame.length + 3);
  padded.set(frame, 3);
  assert.equal(A.decodePacket(padded.subarray(3)).level, 9);
  assert.equal(A.decodePacket(new DataView(padded.buffer, 3, frame.length)).level, 9);
  assert.equal(A.decodePacket(frame.buffer).level, 9);
});

check('encode_checks_values', () => {
  const bad = [
    { playerId: 2 ** 31 },
    { playerId: 1.5 },
    { playerId: '1' },
    { level: 256 },
    { delta: -129 },
    { gold: -1 },
    { HP: 40000 },
    { mp: -1 },
    { accountId: 2n ** 63n },
    { accountId: 2 ** 60 },
    { sessionKey: -1n },
    { flag: 1 },
    { posX: '1' },
    { nickName: 5 },
  ];
  for (const init of bad) {
    throwsPacketError(A, 'InvalidValue', () => new A.C_AllTypes(init).encode());
  }
  throwsPacketError(A, 'InvalidValue', () => new A.S_Inventory({ items: [null] }).encode());
  throwsPacketError(A, 'InvalidValue', () => new A.S_Inventory({ items: 'x' }).encode());
  throwsPacketError(A, 'StringTooLong', () => new A.C_AllTypes({ nickName: 'x'.repeat(32768) }).encode());
  throwsPacketError(U, 'StringTooLong', () => new U.C_Chat({ chat: '한'.repeat(21846) }).encode());
  throwsPacketError(A, 'ListTooLong', () => new A.S_Inventory({ markers: new Array(65536).fill({}) }).encode());
  throwsPacketError(A, 'TooLarge', () => new A.S_Inventory({
    items: new Array(3).fill({ itemId: 1, name: 'x'.repeat(12000) }),
  }).encode());
  // The longest string that fits, in both encodings.
  assert.equal(new A.C_AllTypes({ nickName: 'x'.repeat(32743) }).encode().length, 65535);
  throwsPacketError(A, 'TooLarge', () => new A.C_AllTypes({ nickName: 'x'.repeat(32744) }).encode());
  assert.equal(new U.C_Chat({ chat: 'x'.repeat(65529) }).encode().length, 65535);
  throwsPacketError(U, 'TooLarge', () => new U.C_Chat({ chat: 'x'.repeat(65530) }).encode());
});

check('field_less_elements_are_bounded', () => {
  // S_Nest: list outer { list inner { } }. Each outer element costs 2 bytes, each inner
  // none: without a budget 32k outer elements could claim 2 billion inner ones.
  const frame = (outer, inner) => {
    const bytes = new Uint8Array(6 + 2 * outer);
    const view = new DataView(bytes.buffer);
    view.setUint16(0, bytes.length, true);
    view.setUint16(2, N.PacketId.S_Nest, true);
    view.setUint16(4, outer, true);
    for (let i = 0; i < outer; i++) {
      view.setUint16(6 + 2 * i, inner, true);
    }
    return bytes;
  };
  assert.equal(N.decodePacket(frame(2, 30000)).outers[1].inners.length, 30000);
  throwsPacketError(N, 'TooManyElements', () => N.decodePacket(frame(2, 40000)));
  const started = Date.now();
  throwsPacketError(N, 'TooManyElements', () => N.decodePacket(frame(32000, 65535)));
  assert.ok(Date.now() - started < 5000, 'rejected quickly');
});

check('mutated_frames_throw_only_packet_errors', () => {
  // xorshift32 with a fixed seed: the same mutations on every run.
  let state = 0x9e3779b9;
  const next = () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state;
  };
  let decoded = 0;
  let rejected = 0;
  for (let i = 0; i < 20000; i++) {
    const { m, frame } = goodFrames[next() % goodFrames.length];
    const bytes = frame.slice();
    switch (next() % 5) {
      case 0: // flip a few bits
        for (let k = 1 + (next() % 4); k > 0; k--) {
          bytes[next() % bytes.length] ^= 1 << (next() % 8);
        }
        break;
      case 1: { // random byte anywhere, keeping the header consistent
        bytes[4 + (next() % Math.max(1, bytes.length - 4))] = next() & 0xff;
        break;
      }
      case 2: { // cut short, size field fixed up
        const cut = bytes.subarray(0, next() % (bytes.length + 1));
        if (cut.length >= 2) {
          new DataView(cut.buffer).setUint16(0, cut.length, true);
        }
        tryDecode(m, cut);
        continue;
      }
      case 3: // random size field
        new DataView(bytes.buffer).setUint16(0, next() & 0xffff, true);
        break;
      default: // random id
        new DataView(bytes.buffer).setUint16(2, next() % 8, true);
    }
    tryDecode(m, bytes);
  }
  function tryDecode(m, bytes) {
    let packet;
    try {
      packet = m.decodePacket(bytes);
    } catch (e) {
      if (!(e instanceof m.PacketError)) {
        throw new Error(`${e?.name} (not PacketError) for ${hex(bytes)}: ${e?.message}`);
      }
      rejected++;
      return;
    }
    decoded++;
    // Whatever decodes re-encodes to the same length and decodes to the same packet.
    const again = packet.encode();
    assert.equal(again.length, bytes.length, hex(bytes));
    assert.deepStrictEqual(m.decodePacket(again), packet);
  }
  assert.ok(decoded > 1000 && rejected > 1000, `decoded ${decoded}, rejected ${rejected}`);
});
