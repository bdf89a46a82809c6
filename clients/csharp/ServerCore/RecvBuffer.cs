using System;
using System.IO;

namespace ServerCore
{
    /// <summary>
    /// Bytes received and not yet handed out, and the framing rules over them:
    /// <c>[u16 size][u16 id][body]</c>, little-endian, <c>size</c> counting the 4-byte
    /// header. No I/O here: the session writes received bytes in, frames come out.
    /// </summary>
    /// <remarks>
    /// The buffer has a fixed capacity of at least twice the largest frame, so a frame in
    /// progress always fits after <see cref="Compact"/>; nothing a peer sends makes it grow.
    /// </remarks>
    sealed class RecvBuffer
    {
        public const int HeaderSize = 4;

        readonly byte[] _buffer;
        int _read;
        int _write;

        public RecvBuffer(int capacity)
        {
            _buffer = new byte[capacity];
        }

        /// <summary>Bytes received but not yet taken as frames.</summary>
        public int DataSize { get { return _write - _read; } }

        /// <summary>Where the next received bytes go.</summary>
        public ArraySegment<byte> FreeSegment
        {
            get { return new ArraySegment<byte>(_buffer, _write, _buffer.Length - _write); }
        }

        /// <summary>Records that <paramref name="count"/> bytes were written into <see cref="FreeSegment"/>.</summary>
        public void OnWrite(int count)
        {
            if (count < 0 || count > _buffer.Length - _write)
                throw new ArgumentOutOfRangeException("count");
            _write += count;
        }

        /// <summary>
        /// Takes the next whole frame, header included. Returns false when more bytes are
        /// needed. The segment points into this buffer and is valid until the next
        /// <see cref="Compact"/>.
        /// </summary>
        /// <exception cref="InvalidDataException">
        /// The size field is below the header size or above <paramref name="maxPacketSize"/>:
        /// the stream cannot be framed any further.
        /// </exception>
        public bool TryTakeFrame(int maxPacketSize, out ArraySegment<byte> frame)
        {
            frame = default(ArraySegment<byte>);
            if (DataSize < 2)
                return false;
            int size = _buffer[_read] | (_buffer[_read + 1] << 8);
            if (size < HeaderSize)
                throw new InvalidDataException("frame size " + size + " is smaller than the 4-byte header");
            if (size > maxPacketSize)
                throw new InvalidDataException("frame size " + size + " exceeds the maximum packet size " + maxPacketSize);
            if (DataSize < size)
                return false;
            frame = new ArraySegment<byte>(_buffer, _read, size);
            _read += size;
            return true;
        }

        /// <summary>Moves the bytes of an incomplete frame to the front, freeing the rest.</summary>
        public void Compact()
        {
            int data = DataSize;
            if (data > 0 && _read > 0)
                Buffer.BlockCopy(_buffer, _read, _buffer, 0, data);
            _read = 0;
            _write = data;
        }
    }
}
