/** Bytes of the frame header: `[u16 size incl. header][u16 id]`. */
export declare const HEADER_SIZE: 4;

/** Largest frame: the size field is a u16 and counts the header. */
export declare const MAX_FRAME_SIZE: 65535;

/** What decoding and encoding accept as bytes. */
export type BytesLike = Uint8Array | ArrayBuffer | ArrayBufferView;

/** Kinds of {@link PacketError}. */
export type PacketErrorCode =
  | 'Truncated'
  | 'SizeMismatch'
  | 'UnknownId'
  | 'WrongId'
  | 'InvalidString'
  | 'ListTooLong'
  | 'TooManyElements'
  | 'TrailingBytes'
  | 'BadFrameSize'
  | 'NotBytes'
  | 'InvalidValue'
  | 'StringTooLong'
  | 'TooLarge';

/** The only error decoding throws, and the error encoding throws for a bad value. */
export declare class PacketError extends Error {
  constructor(code: PacketErrorCode, message: string);
  readonly name: 'PacketError';
  /** Machine-readable kind of error. */
  readonly code: PacketErrorCode;
}

/** Cuts a buffer holding only whole frames into frames (views, not copies). */
export declare function splitFrames(data: BytesLike): Uint8Array[];

/** Reassembles frames from a byte stream delivered in chunks of any size. */
export declare class FrameReader {
  /** @param maxFrameSize largest frame accepted, 4 to 65,535 (default 65,535). */
  constructor(maxFrameSize?: number);
  /** Bytes of an incomplete frame held back for the next chunk. */
  readonly buffered: number;
  /** Adds a chunk of the stream; returns the frames it completes, in order. */
  push(chunk: BytesLike): Uint8Array[];
}

/** Decodes one whole frame (header included) into an instance of its packet class. */
export declare function decodePacket(frame: BytesLike): Packet;
