
/** Strict UTF-8 (bad bytes throw) that keeps a leading U+FEFF, as the Rust decoder does. */
const __PG_UTF8_DECODER = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const __PG_UTF8_ENCODER = new TextEncoder();

/** Reads `[u16 byte length][UTF-8]`; invalid UTF-8 is a PacketError (`InvalidString`). */
function __pgReadString(r, field) {
  const len = r.u16();
  const at = r.take(len);
  try {
    return __PG_UTF8_DECODER.decode(r.bytes.subarray(at, at + len));
  } catch {
    throw new PacketError('InvalidString', `invalid string in ${field}`);
  }
}

/**
 * Writes `[u16 byte length][UTF-8]`. An unpaired surrogate is written as U+FFFD (as
 * TextEncoder and C#'s Encoding.UTF8 do), so the frame always decodes on the Rust side.
 */
function __pgWriteString(w, value, field) {
  const encoded = __PG_UTF8_ENCODER.encode(__pgString(value, field));
  if (encoded.length > 0xffff) {
    throw new PacketError('StringTooLong', `string ${field} is ${encoded.length} bytes, more than 65535`);
  }
  const at = w.reserve(2 + encoded.length, field);
  w.bytes[at] = encoded.length & 0xff;
  w.bytes[at + 1] = encoded.length >> 8;
  w.bytes.set(encoded, at + 2);
}
