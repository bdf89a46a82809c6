namespace ServerCore
{
    /// <summary>Why a <see cref="PacketSession"/> ended.</summary>
    public enum DisconnectReason
    {
        /// <summary>The session has not ended (or has not started).</summary>
        None = 0,

        /// <summary>The application called <see cref="PacketSession.Disconnect()"/>.</summary>
        ClosedByClient,

        /// <summary>The server closed the connection.</summary>
        ClosedByServer,

        /// <summary>The connection could not be opened (refused, unreachable, ...).</summary>
        ConnectFailed,

        /// <summary>The connection was not opened within <see cref="PacketSession.ConnectTimeoutMs"/>.</summary>
        ConnectTimeout,

        /// <summary>
        /// The server sent a frame this client cannot accept (a size below the 4-byte header
        /// or above <see cref="PacketSession.MaxPacketSize"/>), or the application reported a
        /// malformed packet with <see cref="PacketSession.Disconnect(DisconnectReason, string)"/>.
        /// </summary>
        ProtocolError,

        /// <summary>More than <see cref="PacketSession.MaxSendQueueBytes"/> waited to be sent.</summary>
        SendQueueFull,

        /// <summary>The connection failed after it was open (reset, timed out, ...).</summary>
        SocketError,
    }
}
