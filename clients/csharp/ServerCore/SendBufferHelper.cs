using System;

namespace ServerCore
{
    /// <summary>
    /// Where the generated packets' <c>Write()</c> encodes, with the contract of the course's
    /// SendBufferHelper: <see cref="Open"/> reserves space, the caller writes into it,
    /// <see cref="Close"/> commits the bytes actually written and returns them.
    /// </summary>
    /// <remarks>
    /// Each thread carves packets out of its own chunk (no locks). A chunk is never written
    /// again once handed out: when one runs short a new one replaces it, and the old one
    /// lives on as long as a queued packet refers to it. So a returned segment stays valid
    /// until it has been sent.
    /// </remarks>
    public static class SendBufferHelper
    {
        /// <summary>Size of a thread's chunk; a larger reservation gets a chunk of its own size.</summary>
        public const int ChunkSize = 64 * 1024;

        [ThreadStatic] static byte[] _chunk;
        [ThreadStatic] static int _used;
        [ThreadStatic] static int _reserved;

        /// <summary>Reserves <paramref name="reserveSize"/> bytes and returns them for writing.</summary>
        /// <exception cref="ArgumentOutOfRangeException"><paramref name="reserveSize"/> is negative.</exception>
        public static ArraySegment<byte> Open(int reserveSize)
        {
            if (reserveSize < 0)
                throw new ArgumentOutOfRangeException("reserveSize");
            if (_chunk == null || _chunk.Length - _used < reserveSize)
            {
                _chunk = new byte[Math.Max(ChunkSize, reserveSize)];
                _used = 0;
            }
            _reserved = reserveSize;
            return new ArraySegment<byte>(_chunk, _used, reserveSize);
        }

        /// <summary>Commits the first <paramref name="usedSize"/> bytes of the last <see cref="Open"/>.</summary>
        /// <exception cref="InvalidOperationException">
        /// <paramref name="usedSize"/> is negative or more than was reserved.
        /// </exception>
        public static ArraySegment<byte> Close(int usedSize)
        {
            if (_chunk == null || usedSize < 0 || usedSize > _reserved)
                throw new InvalidOperationException("Close(" + usedSize + ") after Open(" + _reserved + ")");
            ArraySegment<byte> written = new ArraySegment<byte>(_chunk, _used, usedSize);
            _used += usedSize;
            _reserved = 0;
            return written;
        }
    }
}
