using System;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Threading;
using ServerCore;

/// <summary>The sample's exit statuses.</summary>
static class Exit
{
    public const int Ok = 0;
    public const int Usage = 1;
    public const int ConnectFailed = 2;
    public const int ProtocolError = 3;
    public const int Timeout = 4;
    public const int Disconnected = 5;
}

/// <summary>
/// A console client for game-server: connects, enters (S_PlayerList), moves, chats, prints
/// every packet it receives, leaves, and exits with a status saying how it went. The main
/// loop stands in for Unity's Update: it calls Poll, and every handler runs inside it.
/// </summary>
static class Program
{
    const string UsageText =
        "usage: Sample.exe HOST:PORT [--timeout-ms MS] [--until-chat TEXT]\n" +
        "  Connects to game-server, enters, moves to (1.5, 0, -2.25), says \"hello from C#\",\n" +
        "  prints what it receives, and leaves once its own move and chat came back.\n" +
        "  --timeout-ms MS    give up after MS milliseconds (default 10000)\n" +
        "  --until-chat TEXT  before leaving, also wait for another player's chat containing TEXT\n" +
        "exit status: 0 ok; 1 usage; 2 connect failed; 3 protocol error; 4 timeout;\n" +
        "  5 disconnected by the server";

    static int Main(string[] args)
    {
        IPEndPoint server;
        int timeoutMs;
        string untilChat;
        string error = ParseArgs(args, out server, out timeoutMs, out untilChat);
        if (error != null)
        {
            Console.Error.WriteLine("sample: " + error);
            Console.Error.WriteLine(UsageText);
            return error.StartsWith("cannot resolve", StringComparison.Ordinal) ? Exit.ConnectFailed : Exit.Usage;
        }

        GameSession session = new GameSession(untilChat);
        session.ConnectTimeoutMs = timeoutMs;
        // A packet that does not decode is a protocol error: say so and leave.
        PacketManager.Instance.OnInvalidPacket = (s, buffer, e) => s.Disconnect(DisconnectReason.ProtocolError, e.Message);

        Stopwatch clock = Stopwatch.StartNew();
        session.Connect(server);
        bool leaving = false;
        while (true)
        {
            session.Poll();
            if (session.State == SessionState.Closed)
                break;
            if (session.Done && !leaving)
            {
                leaving = true;
                session.Send(new C_LeaveGame().Write());
                Console.WriteLine("leaving");
                session.Disconnect();
            }
            if (clock.ElapsedMilliseconds > timeoutMs)
            {
                Console.Error.WriteLine("sample: timed out after " + timeoutMs + " ms (state " + session.State +
                    (session.PlayerId == 0 ? ", never entered" : ", entered as player " + session.PlayerId) + ")");
                return Exit.Timeout;
            }
            Thread.Sleep(5);
        }
        return ExitStatus(session.DisconnectReason, leaving);
    }

    static int ExitStatus(DisconnectReason reason, bool leaving)
    {
        switch (reason)
        {
            case DisconnectReason.ClosedByClient:
                return leaving ? Exit.Ok : Exit.Disconnected;
            case DisconnectReason.ConnectFailed:
            case DisconnectReason.ConnectTimeout:
                return Exit.ConnectFailed;
            case DisconnectReason.ProtocolError:
                return Exit.ProtocolError;
            default:
                return Exit.Disconnected;
        }
    }

    // Returns null when the arguments are good, else what is wrong with them.
    static string ParseArgs(string[] args, out IPEndPoint server, out int timeoutMs, out string untilChat)
    {
        server = null;
        timeoutMs = 10000;
        untilChat = null;
        string address = null;
        for (int i = 0; i < args.Length; i++)
        {
            string arg = args[i];
            bool hasValue = i + 1 < args.Length;
            if (arg == "--timeout-ms" && hasValue)
            {
                if (!int.TryParse(args[++i], out timeoutMs) || timeoutMs <= 0)
                    return "--timeout-ms needs a positive number of milliseconds";
            }
            else if (arg == "--until-chat" && hasValue)
                untilChat = args[++i];
            else if (!arg.StartsWith("-", StringComparison.Ordinal) && address == null)
                address = arg;
            else
                return "unexpected argument " + arg;
        }
        if (address == null)
            return "no server address";

        int colon = address.LastIndexOf(':');
        int port;
        if (colon <= 0 || !int.TryParse(address.Substring(colon + 1), out port) || port < 1 || port > 65535)
            return "\"" + address + "\" is not HOST:PORT";
        string host = address.Substring(0, colon).Trim('[', ']');
        IPAddress ip;
        if (!IPAddress.TryParse(host, out ip))
        {
            try
            {
                IPAddress[] found = Dns.GetHostAddresses(host);
                ip = Array.Find(found, a => a.AddressFamily == AddressFamily.InterNetwork);
                if (ip == null && found.Length > 0)
                    ip = found[0];
            }
            catch (SocketException e)
            {
                return "cannot resolve " + host + ": " + e.Message;
            }
            if (ip == null)
                return "cannot resolve " + host;
        }
        server = new IPEndPoint(ip, port);
        return null;
    }
}
