using ServerCore;

/// <summary>
/// The handlers the generated ClientPacketManager.cs calls, one per S_ packet, as in the
/// course. They run inside PacketSession.Poll, on the thread that calls it.
/// </summary>
static class PacketHandler
{
    public static void S_BroadcastEnterGameHandler(PacketSession session, IPacket packet)
    {
        ((GameSession)session).OnEnter((S_BroadcastEnterGame)packet);
    }

    public static void S_BroadcastLeaveGameHandler(PacketSession session, IPacket packet)
    {
        ((GameSession)session).OnLeave((S_BroadcastLeaveGame)packet);
    }

    public static void S_PlayerListHandler(PacketSession session, IPacket packet)
    {
        ((GameSession)session).OnPlayerList((S_PlayerList)packet);
    }

    public static void S_BroadcastMoveHandler(PacketSession session, IPacket packet)
    {
        ((GameSession)session).OnMove((S_BroadcastMove)packet);
    }

    public static void S_ChatHandler(PacketSession session, IPacket packet)
    {
        ((GameSession)session).OnChat((S_Chat)packet);
    }
}
