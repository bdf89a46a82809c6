using System;
using System.Collections.Generic;

namespace ServerCore
{
    /// <summary>
    /// Packets waiting to be sent, capped in bytes, handed to the socket as one gathered
    /// send. No I/O here: the session asks for the next batch and reports how much went out.
    /// </summary>
    sealed class SendQueue
    {
        /// <summary>Most packets one gathered send carries.</summary>
        const int MaxBatch = 64;

        readonly Queue<ArraySegment<byte>> _packets = new Queue<ArraySegment<byte>>();
        readonly List<ArraySegment<byte>> _batch = new List<ArraySegment<byte>>(MaxBatch);
        readonly int _maxBytes;
        int _bytes;
        // Bytes of the first packet already sent by a partial send.
        int _headSent;

        public SendQueue(int maxBytes)
        {
            _maxBytes = maxBytes;
        }

        public int Bytes { get { return _bytes; } }

        public bool IsEmpty { get { return _packets.Count == 0; } }

        /// <summary>Queues a packet; false (and nothing queued) if the cap would be passed.</summary>
        public bool TryEnqueue(ArraySegment<byte> packet)
        {
            if ((long)_bytes + packet.Count > _maxBytes)
                return false;
            _packets.Enqueue(packet);
            _bytes += packet.Count;
            return true;
        }

        /// <summary>The next packets to send, in order, the first one less what already went.</summary>
        public IList<ArraySegment<byte>> NextBatch()
        {
            _batch.Clear();
            foreach (ArraySegment<byte> packet in _packets)
            {
                if (_batch.Count == 0 && _headSent > 0)
                    _batch.Add(new ArraySegment<byte>(packet.Array, packet.Offset + _headSent, packet.Count - _headSent));
                else
                    _batch.Add(packet);
                if (_batch.Count == MaxBatch)
                    break;
            }
            return _batch;
        }

        /// <summary>Drops what a send wrote: whole packets, and the part of a packet cut short.</summary>
        public void OnSent(int count)
        {
            _bytes -= count;
            count += _headSent;
            _headSent = 0;
            while (count > 0)
            {
                int head = _packets.Peek().Count;
                if (count < head)
                {
                    _headSent = count;
                    return;
                }
                _packets.Dequeue();
                count -= head;
            }
        }

        public void Clear()
        {
            _packets.Clear();
            _batch.Clear();
            _bytes = 0;
            _headSent = 0;
        }
    }
}
