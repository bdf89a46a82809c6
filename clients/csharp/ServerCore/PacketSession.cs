using System;
using System.Diagnostics;
using System.IO;
using System.Net;
using System.Net.Sockets;

namespace ServerCore
{
    /// <summary>Where a <see cref="PacketSession"/> is in its life.</summary>
    public enum SessionState
    {
        /// <summary>Created; <see cref="PacketSession.Connect"/> not called yet.</summary>
        Idle,
        /// <summary>The TCP connection is being opened.</summary>
        Connecting,
        /// <summary>Open: packets flow both ways.</summary>
        Connected,
        /// <summary><see cref="PacketSession.Disconnect()"/> was called: what was queued is sent, then the connection closes.</summary>
        Closing,
        /// <summary>Over; <see cref="PacketSession.DisconnectReason"/> says why.</summary>
        Closed,
    }

    /// <summary>
    /// A TCP connection to a server speaking <c>[u16 size][u16 id][body]</c> frames: the
    /// client half of a ServerCore. Subclass it, override <see cref="OnRecvPacket"/> (usually
    /// to call the generated <c>PacketManager.Instance.OnRecvPacket(this, buffer)</c>), then
    /// <see cref="Connect"/> and call <see cref="Poll"/> regularly, e.g. from Unity's
    /// <c>Update</c>.
    /// </summary>
    /// <remarks>
    /// <para>Threads: the session starts none. <see cref="Connect"/>, <see cref="Poll"/> and
    /// <see cref="Disconnect()"/> belong to one thread (in Unity, the main thread), and every
    /// callback (<see cref="OnConnected"/>, <see cref="OnRecvPacket"/>,
    /// <see cref="OnDisconnected"/>) runs inside <see cref="Poll"/> on that thread, so
    /// handlers may touch Unity objects. <see cref="Send"/> may be called from any thread.</para>
    /// <para>Bounds: a frame larger than <see cref="MaxPacketSize"/> or smaller than its
    /// header closes the session (<see cref="ServerCore.DisconnectReason.ProtocolError"/>);
    /// the receive buffer never grows; at most <see cref="MaxSendQueueBytes"/> wait to be sent.</para>
    /// <para>A session is used once: after it closed, create a new one to reconnect.</para>
    /// </remarks>
    public abstract class PacketSession
    {
        /// <summary>Bytes of the <c>[u16 size][u16 id]</c> header.</summary>
        public const int HeaderSize = RecvBuffer.HeaderSize;

        /// <summary>The largest frame the wire format can describe.</summary>
        public const int MaxFrameSize = ushort.MaxValue;

        // Reads per Poll, so a flood cannot keep Poll from returning.
        const int MaxReadsPerPoll = 16;

        // How long a Closing session waits for the server to close its side.
        const int CloseLingerMs = 2000;

        readonly object _lock = new object();
        readonly RecvBuffer _recv = new RecvBuffer(2 * (MaxFrameSize + 1));
        SendQueue _sendQueue;
        Socket _socket;
        IAsyncResult _connecting;
        IPEndPoint _remote;
        readonly Stopwatch _clock = new Stopwatch();
        long _closingSince;
        bool _sendShutDown;
        SessionState _state = SessionState.Idle;
        DisconnectReason _reason = DisconnectReason.None;
        string _detail;
        bool _disconnectRaised;

        int _maxPacketSize = MaxFrameSize;

        /// <summary>Largest frame accepted from the server, header included (4 to 65535; default 65535).</summary>
        public int MaxPacketSize
        {
            get { return _maxPacketSize; }
            set
            {
                if (value < HeaderSize || value > MaxFrameSize)
                    throw new ArgumentOutOfRangeException("value", "MaxPacketSize must be between 4 and 65535");
                _maxPacketSize = value;
            }
        }

        /// <summary>Bytes that may wait to be sent before the session closes with
        /// <see cref="ServerCore.DisconnectReason.SendQueueFull"/> (default 1 MiB). Set before <see cref="Connect"/>.</summary>
        public int MaxSendQueueBytes = 1 << 20;

        /// <summary>Milliseconds <see cref="Connect"/> may take (default 10,000).</summary>
        public int ConnectTimeoutMs = 10000;

        /// <summary>Where the session is in its life.</summary>
        public SessionState State { get { lock (_lock) return _state; } }

        /// <summary>True while packets flow both ways.</summary>
        public bool IsConnected { get { return State == SessionState.Connected; } }

        /// <summary>Why the session ended; <see cref="ServerCore.DisconnectReason.None"/> while it has not.</summary>
        public DisconnectReason DisconnectReason { get { lock (_lock) return _reason; } }

        /// <summary>What went wrong, in words, when the reason alone does not say it (may be null).</summary>
        public string DisconnectDetail { get { lock (_lock) return _detail; } }

        /// <summary>The server's address, once <see cref="Connect"/> was called.</summary>
        public IPEndPoint RemoteEndPoint { get { return _remote; } }

        /// <summary>Starts opening the connection; <see cref="Poll"/> reports the outcome
        /// through <see cref="OnConnected"/> or <see cref="OnDisconnected"/>.</summary>
        /// <exception cref="InvalidOperationException">Called a second time.</exception>
        public void Connect(IPEndPoint endPoint)
        {
            if (endPoint == null)
                throw new ArgumentNullException("endPoint");
            lock (_lock)
            {
                if (_state != SessionState.Idle)
                    throw new InvalidOperationException("Connect is called once per session; create a new session to reconnect");
                _remote = endPoint;
                _sendQueue = new SendQueue(MaxSendQueueBytes);
                _state = SessionState.Connecting;
                _clock.Start();
                try
                {
                    _socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                    _socket.NoDelay = true;
                    _connecting = _socket.BeginConnect(endPoint, null, null);
                }
                catch (SocketException e)
                {
                    CloseLocked(DisconnectReason.ConnectFailed, e.Message);
                }
            }
        }

        /// <summary>
        /// Queues a whole frame (as returned by a generated packet's <c>Write()</c>) and sends
        /// what the socket takes at once; the rest goes out in later calls and in
        /// <see cref="Poll"/>. Safe from any thread.
        /// </summary>
        /// <returns>False if the packet was not queued: the session is not connected, the
        /// segment is empty (a <c>Write()</c> that did not fit returns one), or the send queue
        /// is full, which also closes the session.</returns>
        public bool Send(ArraySegment<byte> packet)
        {
            if (packet.Array == null || packet.Count < HeaderSize)
                return false;
            lock (_lock)
            {
                if (_state != SessionState.Connected)
                    return false;
                if (!_sendQueue.TryEnqueue(packet))
                {
                    CloseLocked(DisconnectReason.SendQueueFull,
                        "more than " + MaxSendQueueBytes + " bytes waited to be sent");
                    return false;
                }
                FlushLocked();
                return true;
            }
        }

        /// <summary>
        /// Closes the session: what is queued is still sent, then the connection is shut down.
        /// <see cref="OnDisconnected"/> follows from a later <see cref="Poll"/>, with
        /// <see cref="ServerCore.DisconnectReason.ClosedByClient"/>. Packets arriving meanwhile are dropped.
        /// </summary>
        public void Disconnect()
        {
            lock (_lock)
            {
                if (_state == SessionState.Connected)
                {
                    _state = SessionState.Closing;
                    _closingSince = _clock.ElapsedMilliseconds;
                    FlushLocked();
                }
                else if (_state == SessionState.Idle || _state == SessionState.Connecting)
                {
                    CloseLocked(DisconnectReason.ClosedByClient, null);
                }
            }
        }

        /// <summary>
        /// Closes the session at once, when no more <see cref="Poll"/> calls will follow (in
        /// Unity's <c>OnDestroy</c>, say): packets still queued are dropped. Prefer
        /// <see cref="Disconnect()"/> while the session is still polled.
        /// </summary>
        public void Close()
        {
            lock (_lock)
                CloseLocked(DisconnectReason.ClosedByClient, null);
        }

        /// <summary>
        /// Closes the session at once for a reason the application found, e.g.
        /// <see cref="ServerCore.DisconnectReason.ProtocolError"/> when a packet does not decode.
        /// <see cref="OnDisconnected"/> follows from a later <see cref="Poll"/>.
        /// </summary>
        public void Disconnect(DisconnectReason reason, string detail)
        {
            lock (_lock)
                CloseLocked(reason, detail);
        }

        /// <summary>
        /// Does the session's work on the calling thread: completes the connect, sends what is
        /// queued, reads, and calls <see cref="OnRecvPacket"/> for every whole frame received
        /// (at most <paramref name="maxPackets"/>); raises <see cref="OnDisconnected"/> once
        /// when the session has ended. Never blocks.
        /// </summary>
        /// <returns>How many packets were handed to <see cref="OnRecvPacket"/>.</returns>
        /// <remarks>An exception thrown by a callback propagates out of Poll; the packet it
        /// was handling counts as handled and the session stays usable.</remarks>
        public int Poll(int maxPackets = int.MaxValue)
        {
            int handled = 0;
            SessionState state = State;
            if (state == SessionState.Connecting)
                state = PollConnect();
            if (state == SessionState.Connected)
                handled = ReceiveAndDispatch(maxPackets);
            else if (state == SessionState.Closing)
                lock (_lock)
                    PollClosingLocked();
            RaiseDisconnectedOnce();
            return handled;
        }

        /// <summary>Called from <see cref="Poll"/> once the connection is open.</summary>
        protected virtual void OnConnected(EndPoint endPoint) { }

        /// <summary>
        /// Called from <see cref="Poll"/> with one whole frame, header included. The segment
        /// points into the receive buffer and is valid only during the call.
        /// </summary>
        protected abstract void OnRecvPacket(ArraySegment<byte> buffer);

        /// <summary>Called from <see cref="Poll"/> once, when the session has ended for any reason.</summary>
        protected virtual void OnDisconnected(DisconnectReason reason, string detail) { }

        SessionState PollConnect()
        {
            lock (_lock)
            {
                if (_state != SessionState.Connecting)
                    return _state;
                if (_connecting.IsCompleted)
                {
                    try
                    {
                        _socket.EndConnect(_connecting);
                        _socket.Blocking = false;
                        _state = SessionState.Connected;
                    }
                    catch (SocketException e)
                    {
                        CloseLocked(DisconnectReason.ConnectFailed, e.Message);
                        return _state;
                    }
                }
                else if (_clock.ElapsedMilliseconds > ConnectTimeoutMs)
                {
                    CloseLocked(DisconnectReason.ConnectTimeout,
                        "no connection to " + _remote + " within " + ConnectTimeoutMs + " ms");
                    return _state;
                }
                else
                {
                    return _state;
                }
            }
            OnConnected(_remote);
            return State;
        }

        int ReceiveAndDispatch(int maxPackets)
        {
            int handled = 0;
            for (int reads = 0; ; reads++)
            {
                // Whole frames already here go first, so a close is only seen once every
                // packet that came before it was handled.
                while (handled < maxPackets)
                {
                    ArraySegment<byte> frame;
                    if (!TakeFrame(out frame))
                        break;
                    handled++;
                    OnRecvPacket(frame);
                    if (State != SessionState.Connected)
                        return handled;
                }
                if (handled >= maxPackets || reads == MaxReadsPerPoll)
                    break;
                lock (_lock)
                {
                    if (_state != SessionState.Connected)
                        break;
                    FlushLocked();
                    if (!ReadLocked())
                        break;
                }
            }
            return handled;
        }

        bool TakeFrame(out ArraySegment<byte> frame)
        {
            try
            {
                return _recv.TryTakeFrame(_maxPacketSize, out frame);
            }
            catch (InvalidDataException e)
            {
                frame = default(ArraySegment<byte>);
                lock (_lock)
                    CloseLocked(DisconnectReason.ProtocolError, e.Message);
                return false;
            }
        }

        // One non-blocking read into the receive buffer; false when nothing more came now.
        bool ReadLocked()
        {
            _recv.Compact();
            ArraySegment<byte> free = _recv.FreeSegment;
            SocketError error;
            int n = _socket.Receive(free.Array, free.Offset, free.Count, SocketFlags.None, out error);
            if (error == SocketError.WouldBlock)
                return false;
            if (error != SocketError.Success)
            {
                CloseLocked(DisconnectReason.SocketError, error.ToString());
                return false;
            }
            if (n == 0)
            {
                int partial = _recv.DataSize;
                CloseLocked(DisconnectReason.ClosedByServer,
                    partial > 0 ? "closed with " + partial + " bytes of an incomplete frame buffered" : null);
                return false;
            }
            _recv.OnWrite(n);
            return true;
        }

        // Sends what the socket takes now; the rest stays queued.
        void FlushLocked()
        {
            while (!_sendQueue.IsEmpty)
            {
                SocketError error;
                int sent = _socket.Send(_sendQueue.NextBatch(), SocketFlags.None, out error);
                if (error == SocketError.WouldBlock)
                    return;
                if (error != SocketError.Success)
                {
                    CloseLocked(DisconnectReason.SocketError, error.ToString());
                    return;
                }
                _sendQueue.OnSent(sent);
            }
        }

        // Closing: finish sending, shut our side down, then drop what arrives until the
        // server closes its side (closing with unread bytes would reset the connection and
        // could lose what we sent last), or the linger time is over.
        void PollClosingLocked()
        {
            FlushLocked();
            if (_state != SessionState.Closing)
                return;
            bool lingerOver = _clock.ElapsedMilliseconds - _closingSince > CloseLingerMs;
            if (_sendQueue.IsEmpty && !_sendShutDown)
            {
                try
                {
                    _socket.Shutdown(SocketShutdown.Send);
                }
                catch (SocketException e)
                {
                    CloseLocked(DisconnectReason.SocketError, e.Message);
                    return;
                }
                _sendShutDown = true;
            }
            while (_sendShutDown && !lingerOver)
            {
                _recv.Compact();
                ArraySegment<byte> free = _recv.FreeSegment;
                SocketError error;
                int n = _socket.Receive(free.Array, free.Offset, free.Count, SocketFlags.None, out error);
                if (error == SocketError.WouldBlock)
                    return;
                if (error != SocketError.Success || n == 0)
                    break;
                // Dropped: the application asked to leave.
            }
            if (_sendShutDown || lingerOver)
                CloseLocked(DisconnectReason.ClosedByClient, null);
        }

        void CloseLocked(DisconnectReason reason, string detail)
        {
            if (_state == SessionState.Closed)
                return;
            _state = SessionState.Closed;
            _reason = reason;
            _detail = detail;
            if (_sendQueue != null)
                _sendQueue.Clear();
            if (_socket != null)
            {
                _socket.Close();
                _socket = null;
            }
        }

        void RaiseDisconnectedOnce()
        {
            DisconnectReason reason;
            string detail;
            lock (_lock)
            {
                if (_state != SessionState.Closed || _disconnectRaised)
                    return;
                _disconnectRaised = true;
                reason = _reason;
                detail = _detail;
            }
            OnDisconnected(reason, detail);
        }
    }
}
