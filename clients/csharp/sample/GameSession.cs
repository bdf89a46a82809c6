using System;
using System.Globalization;
using System.Net;
using ServerCore;

/// <summary>
/// The sample's session: enters the room, moves once, chats once, prints everything it
/// receives, and leaves when it has seen its own move and chat come back (and, with
/// --until-chat, someone else's chat containing that text).
/// </summary>
class GameSession : PacketSession
{
    public const float MoveX = 1.5f, MoveY = 0f, MoveZ = -2.25f;
    public const string ChatText = "hello from C#";

    readonly string _untilChat;
    bool _sawOwnMove;
    bool _sawOwnChat;
    bool _sawAwaitedChat;

    public GameSession(string untilChat)
    {
        _untilChat = untilChat;
        _sawAwaitedChat = untilChat == null;
    }

    /// <summary>Our player id, once S_PlayerList told it (0 before).</summary>
    public int PlayerId { get; private set; }

    /// <summary>Everything the sample came for has happened.</summary>
    public bool Done { get { return _sawOwnMove && _sawOwnChat && _sawAwaitedChat; } }

    protected override void OnConnected(EndPoint endPoint)
    {
        Console.WriteLine("connected to " + endPoint);
    }

    protected override void OnRecvPacket(ArraySegment<byte> buffer)
    {
        PacketManager.Instance.OnRecvPacket(this, buffer);
    }

    protected override void OnDisconnected(DisconnectReason reason, string detail)
    {
        Console.WriteLine("disconnected: " + reason + (detail != null ? " (" + detail + ")" : ""));
    }

    public void OnPlayerList(S_PlayerList packet)
    {
        Console.WriteLine("S_PlayerList: " + packet.players.Count + " players");
        foreach (S_PlayerList.Player p in packet.players)
        {
            Console.WriteLine("  player " + p.playerId + (p.isSelf ? " (me)" : "") + " at " + Position(p.posX, p.posY, p.posZ));
            if (p.isSelf)
                PlayerId = p.playerId;
        }
        if (PlayerId == 0)
            return;
        Console.WriteLine("entered as player " + PlayerId);

        C_Move move = new C_Move { posX = MoveX, posY = MoveY, posZ = MoveZ };
        Send(move.Write());
        C_Chat chat = new C_Chat { chat = ChatText };
        Send(chat.Write());
    }

    public void OnEnter(S_BroadcastEnterGame packet)
    {
        Console.WriteLine("S_BroadcastEnterGame: player " + packet.playerId + " at " + Position(packet.posX, packet.posY, packet.posZ));
    }

    public void OnLeave(S_BroadcastLeaveGame packet)
    {
        Console.WriteLine("S_BroadcastLeaveGame: player " + packet.playerId);
    }

    public void OnMove(S_BroadcastMove packet)
    {
        Console.WriteLine("S_BroadcastMove: player " + packet.playerId + " to " + Position(packet.posX, packet.posY, packet.posZ));
        if (packet.playerId == PlayerId && packet.posX == MoveX && packet.posY == MoveY && packet.posZ == MoveZ)
            _sawOwnMove = true;
    }

    public void OnChat(S_Chat packet)
    {
        Console.WriteLine("S_Chat: player " + packet.playerId + ": " + packet.chat);
        if (packet.playerId == PlayerId && packet.chat == ChatText)
            _sawOwnChat = true;
        else if (_untilChat != null && packet.chat.Contains(_untilChat))
            _sawAwaitedChat = true;
    }

    static string Position(float x, float y, float z)
    {
        return string.Format(CultureInfo.InvariantCulture, "({0}, {1}, {2})", x, y, z);
    }
}
