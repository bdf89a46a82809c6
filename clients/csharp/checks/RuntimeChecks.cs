using System;
using System.Collections.Generic;
using System.IO;
using ServerCore;

/// <summary>
/// Checks of the runtime's pure parts (framing, send queue, send buffers), without
/// sockets. Compiled together with ServerCore/*.cs (so internal types are visible) and run
/// by game-server/tests/csharp_client.rs; exits 0 when every check passed.
/// </summary>
static class RuntimeChecks
{
    static int _passed;
    static readonly List<string> _failed = new List<string>();

    static int Main()
    {
        Check("whole frames come out one by one", WholeFrames);
        Check("a frame split across reads waits for its last byte", SplitFrame);
        Check("size fields 0 to 3 are protocol errors", SizesBelowHeader);
        Check("a size above MaxPacketSize is a protocol error before the body arrives", SizeAboveMax);
        Check("a largest frame fits after compaction", LargestFrameFits);
        Check("the send queue keeps order across partial sends", PartialSends);
        Check("the send queue refuses what passes its cap", SendQueueCap);
        Check("send buffers are never reused while referenced", SendBuffers);
        foreach (string f in _failed)
            Console.WriteLine("FAILED: " + f);
        Console.WriteLine(_passed + " passed, " + _failed.Count + " failed");
        return _failed.Count == 0 ? 0 : 1;
    }

    static void Check(string name, Action check)
    {
        try
        {
            check();
            _passed++;
        }
        catch (Exception e)
        {
            _failed.Add(name + ": " + e.Message);
        }
    }

    static void Assert(bool condition, string what)
    {
        if (!condition)
            throw new Exception(what);
    }

    static void Feed(RecvBuffer buffer, params byte[] bytes)
    {
        ArraySegment<byte> free = buffer.FreeSegment;
        Buffer.BlockCopy(bytes, 0, free.Array, free.Offset, bytes.Length);
        buffer.OnWrite(bytes.Length);
    }

    static void WholeFrames()
    {
        RecvBuffer b = new RecvBuffer(1024);
        Feed(b, 4, 0, 2, 0, 6, 0, 5, 0, 0xAA, 0xBB);
        ArraySegment<byte> f;
        Assert(b.TryTakeFrame(65535, out f) && f.Count == 4 && f.Array[f.Offset + 2] == 2, "first frame");
        Assert(b.TryTakeFrame(65535, out f) && f.Count == 6 && f.Array[f.Offset + 5] == 0xBB, "second frame");
        Assert(!b.TryTakeFrame(65535, out f) && b.DataSize == 0, "nothing left");
    }

    static void SplitFrame()
    {
        RecvBuffer b = new RecvBuffer(1024);
        ArraySegment<byte> f;
        Feed(b, 7);
        Assert(!b.TryTakeFrame(65535, out f), "one byte of the size");
        Feed(b, 0, 8, 0, 1, 2);
        Assert(!b.TryTakeFrame(65535, out f), "one body byte missing");
        Feed(b, 3);
        Assert(b.TryTakeFrame(65535, out f) && f.Count == 7, "whole now");
    }

    static void SizesBelowHeader()
    {
        for (byte size = 0; size < 4; size++)
        {
            RecvBuffer b = new RecvBuffer(1024);
            Feed(b, size, 0);
            bool threw = false;
            try
            {
                ArraySegment<byte> f;
                b.TryTakeFrame(65535, out f);
            }
            catch (InvalidDataException)
            {
                threw = true;
            }
            Assert(threw, "size " + size + " accepted");
        }
    }

    static void SizeAboveMax()
    {
        RecvBuffer b = new RecvBuffer(1024);
        Feed(b, 0xD0, 0x07); // 2000, and no body yet
        bool threw = false;
        try
        {
            ArraySegment<byte> f;
            b.TryTakeFrame(1024, out f);
        }
        catch (InvalidDataException e)
        {
            threw = e.Message.Contains("2000");
        }
        Assert(threw, "size 2000 accepted with MaxPacketSize 1024");
    }

    static void LargestFrameFits()
    {
        RecvBuffer b = new RecvBuffer(2 * (PacketSession.MaxFrameSize + 1));
        ArraySegment<byte> f;
        Feed(b, 4, 0, 1, 0);
        Feed(b, 0xFF, 0xFF, 1, 0);
        Assert(b.TryTakeFrame(65535, out f), "the small frame");
        Feed(b, new byte[b.FreeSegment.Count]);
        Assert(b.FreeSegment.Count == 0, "buffer full");
        Assert(b.TryTakeFrame(65535, out f) && f.Count == 65535, "the largest frame");
        b.Compact();
        Assert(b.FreeSegment.Count >= PacketSession.MaxFrameSize, "room for the next largest frame");
    }

    static void PartialSends()
    {
        SendQueue q = new SendQueue(1000);
        Assert(q.TryEnqueue(new ArraySegment<byte>(new byte[] { 1, 2, 3, 4 })), "first");
        Assert(q.TryEnqueue(new ArraySegment<byte>(new byte[] { 5, 6, 7, 8, 9 })), "second");
        q.OnSent(2);
        IList<ArraySegment<byte>> batch = q.NextBatch();
        Assert(batch.Count == 2 && batch[0].Count == 2 && batch[0].Array[batch[0].Offset] == 3, "rest of the first");
        q.OnSent(4);
        batch = q.NextBatch();
        Assert(batch.Count == 1 && batch[0].Count == 3 && batch[0].Array[batch[0].Offset] == 7, "rest of the second");
        Assert(q.Bytes == 3, "3 bytes left, not " + q.Bytes);
        q.OnSent(3);
        Assert(q.IsEmpty && q.Bytes == 0, "empty");
    }

    static void SendQueueCap()
    {
        SendQueue q = new SendQueue(10);
        Assert(q.TryEnqueue(new ArraySegment<byte>(new byte[8])), "8 of 10");
        Assert(!q.TryEnqueue(new ArraySegment<byte>(new byte[4])), "12 of 10 accepted");
        Assert(q.Bytes == 8, "the refused packet was counted");
    }

    static void SendBuffers()
    {
        ArraySegment<byte> open = SendBufferHelper.Open(4096);
        open.Array[open.Offset] = 42;
        ArraySegment<byte> first = SendBufferHelper.Close(1);
        for (int i = 0; i < 100; i++)
        {
            ArraySegment<byte> next = SendBufferHelper.Open(4096);
            next.Array[next.Offset] = 7;
            SendBufferHelper.Close(4000);
        }
        Assert(first.Array[first.Offset] == 42, "a committed packet was overwritten");
        SendBufferHelper.Open(16);
        bool threw = false;
        try
        {
            SendBufferHelper.Close(17);
        }
        catch (InvalidOperationException)
        {
            threw = true;
        }
        Assert(threw, "Close past the reservation accepted");
    }
}
