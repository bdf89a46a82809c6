
/** Code units turned into a string per String.fromCharCode call (keeps the argument
 * list well below engine limits). */
const __PG_CHUNK_UNITS = 4096;

/**
 * Reads `[u16 byte length][UTF-16LE]`. An odd length or an unpaired surrogate is a
 * PacketError (`InvalidString`), as in the Rust decoder.
 */
function __pgReadString(r, field) {
  const len = r.u16();
  const at = r.take(len);
  if (len % 2 !== 0) {
    throw new PacketError('InvalidString', `invalid string in ${field}`);
  }
  const bytes = r.bytes;
  const end = at + len;
  const units = [];
  let out = '';
  for (let i = at; i < end; i += 2) {
    const unit = bytes[i] | (bytes[i + 1] << 8);
    if (unit >= 0xd800 && unit <= 0xdfff) {
      const next = i + 3 < end ? bytes[i + 2] | (bytes[i + 3] << 8) : 0;
      if (unit > 0xdbff || next < 0xdc00 || next > 0xdfff) {
        throw new PacketError('InvalidString', `invalid string in ${field}`);
      }
      units.push(unit, next);
      i += 2;
    } else {
      units.push(unit);
    }
    if (units.length >= __PG_CHUNK_UNITS) {
      out += String.fromCharCode.apply(null, units);
      units.length = 0;
    }
  }
  return out + String.fromCharCode.apply(null, units);
}

/**
 * Writes `[u16 byte length][UTF-16LE]` straight from the JavaScript string's code units.
 * An unpaired surrogate is written as U+FFFD (as C#'s Encoding.Unicode does), so the
 * frame always decodes on the Rust side; the byte length does not change.
 */
function __pgWriteString(w, value, field) {
  const s = __pgString(value, field);
  const len = s.length * 2;
  if (len > 0xffff) {
    throw new PacketError('StringTooLong', `string ${field} is ${len} bytes, more than 65535`);
  }
  const at = w.reserve(2 + len, field);
  const bytes = w.bytes;
  bytes[at] = len & 0xff;
  bytes[at + 1] = len >> 8;
  let o = at + 2;
  for (let i = 0; i < s.length; i++) {
    let unit = s.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdfff) {
      const next = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (unit <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        bytes[o] = unit & 0xff;
        bytes[o + 1] = unit >> 8;
        o += 2;
        unit = next;
        i++;
      } else {
        unit = 0xfffd;
      }
    }
    bytes[o] = unit & 0xff;
    bytes[o + 1] = unit >> 8;
    o += 2;
  }
}
