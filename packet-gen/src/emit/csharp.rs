//! C# code generation: a drop-in replacement for the course generator's output.

use std::fmt::Write as _;

use super::generated_notice;
use crate::model::{min_size, Field, FieldKind, Packet, Scalar, Schema, StringEncoding};
use crate::naming::upper_first;

/// The three C# files of the course layout. See [`generate_csharp`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CSharpFiles {
    /// `GenPackets.cs`: `PacketID`, `IPacket`, `PacketWire` and one class per packet.
    pub gen_packets: String,
    /// `ClientPacketManager.cs`: `PacketManager` registering every `S_` packet.
    pub client_packet_manager: String,
    /// `ServerPacketManager.cs`: `PacketManager` registering every other packet.
    pub server_packet_manager: String,
}

/// Generates `GenPackets.cs`, `ClientPacketManager.cs` and `ServerPacketManager.cs`.
///
/// The output is deterministic and depends only on `schema`.
///
/// # Examples
///
/// ```
/// let schema = packet_gen::parse_pdl(
///     r#"<PDL><packet name="S_Chat"><string name="chat"/></packet></PDL>"#,
///     "PDL.xml",
/// )
/// .unwrap();
/// let files = packet_gen::generate_csharp(&schema);
/// assert!(files.gen_packets.contains("public class S_Chat : IPacket"));
/// assert!(files.client_packet_manager.contains("PacketHandler.S_ChatHandler"));
/// assert!(!files.server_packet_manager.contains("PacketHandler.S_ChatHandler"));
/// ```
#[must_use]
pub fn generate_csharp(schema: &Schema) -> CSharpFiles {
    CSharpFiles {
        gen_packets: gen_packets(schema),
        client_packet_manager: packet_manager(schema, false),
        server_packet_manager: packet_manager(schema, true),
    }
}

fn cs_type(field: &Field) -> String {
    match &field.kind {
        FieldKind::Scalar(s) => s.pdl_name().to_string(),
        FieldKind::String => "string".to_string(),
        FieldKind::List(_) => format!("List<{}>", upper_first(&field.name)),
    }
}

fn bit_converter_read(s: Scalar) -> &'static str {
    match s {
        Scalar::Bool => "ToBoolean",
        Scalar::Short => "ToInt16",
        Scalar::UShort => "ToUInt16",
        Scalar::Int => "ToInt32",
        Scalar::UInt => "ToUInt32",
        Scalar::Long => "ToInt64",
        Scalar::ULong => "ToUInt64",
        Scalar::Float => "ToSingle",
        Scalar::Double => "ToDouble",
        Scalar::Byte | Scalar::SByte => unreachable!("single bytes are indexed directly"),
    }
}

fn gen_packets(schema: &Schema) -> String {
    let mut w = generated_notice(schema);
    w.push_str(
        "using System;\nusing System.Collections.Generic;\nusing System.Text;\nusing System.Net;\nusing ServerCore;\n\n",
    );
    w.push_str("public enum PacketID\n{\n");
    for p in &schema.packets {
        let _ = writeln!(w, "    {} = {},", p.name, p.id);
    }
    w.push_str("}\n\n");
    w.push_str(
        "public interface IPacket\n{\n    ushort Protocol { get; }\n    void Read(ArraySegment<byte> segment);\n    ArraySegment<byte> Write();\n}\n\n",
    );
    w.push_str(&wire_helpers(schema.encoding));
    for p in &schema.packets {
        packet_class(&mut w, p);
    }
    w
}

fn wire_helpers(encoding: StringEncoding) -> String {
    let (strict, write) = match encoding {
        StringEncoding::Utf16Le => (
            "new UnicodeEncoding(false, false, true)",
            "Encoding.Unicode",
        ),
        StringEncoding::Utf8 => ("new UTF8Encoding(false, true)", "Encoding.UTF8"),
    };
    let name = encoding.wire_name();
    format!(
        r#"// Bounds-checked helpers used by the packet classes below (packet-gen hardening).
// Read() throws System.IO.InvalidDataException on a malformed frame instead of mis-reading it;
// Write() returns default(ArraySegment<byte>) (Array == null, like the course's `return null`)
// instead of writing past the 4096 bytes it opened.
public static class PacketWire
{{
    // Bytes Write() opens with SendBufferHelper.Open and never writes past.
    public const int MaxWriteSize = 4096;

    // Strings are {name}. Reading rejects invalid bytes; writing replaces unpaired surrogates.
    static readonly Encoding ReadEncoding = {strict};
    static readonly Encoding WriteEncoding = {write};

    // Checks the header of a whole frame and returns exactly its `size` bytes; count is set
    // just past the 4-byte header.
    public static ReadOnlySpan<byte> Frame(ArraySegment<byte> segment, ushort id, out ushort count)
    {{
        if (segment.Array == null || segment.Count < 4)
            throw new System.IO.InvalidDataException("frame shorter than its 4-byte header");
        ReadOnlySpan<byte> s = new ReadOnlySpan<byte>(segment.Array, segment.Offset, segment.Count);
        ushort size = BitConverter.ToUInt16(s);
        if (size < 4 || size > s.Length)
            throw new System.IO.InvalidDataException("frame size field " + size + " does not fit the " + s.Length + "-byte buffer");
        ushort actualId = BitConverter.ToUInt16(s.Slice(2, s.Length - 2));
        if (actualId != id)
            throw new System.IO.InvalidDataException("frame has packet id " + actualId + ", expected " + id);
        count = 4;
        return s.Slice(0, size);
    }}

    // Throws unless `n` bytes remain after `count`.
    public static void Need(ReadOnlySpan<byte> s, ushort count, int n)
    {{
        if (s.Length - count < n)
            throw new System.IO.InvalidDataException("frame truncated: needs " + (count + n) + " bytes, has " + s.Length);
    }}

    // Throws if bytes are left over after the last field.
    public static void End(ReadOnlySpan<byte> s, ushort count, string packet)
    {{
        if (count != s.Length)
            throw new System.IO.InvalidDataException((s.Length - count) + " trailing bytes after " + packet);
    }}

    public static string ReadString(ReadOnlySpan<byte> s, ref ushort count)
    {{
        Need(s, count, sizeof(ushort));
        ushort len = BitConverter.ToUInt16(s.Slice(count, s.Length - count));
        count += sizeof(ushort);
        Need(s, count, len);
        string value;
        try
        {{
            value = ReadEncoding.GetString(s.Slice(count, len));
        }}
        catch (DecoderFallbackException e)
        {{
            throw new System.IO.InvalidDataException("invalid {name} string", e);
        }}
        count += len;
        return value;
    }}

    // A null string is written as "".
    public static bool WriteString(Span<byte> s, ref ushort count, string value)
    {{
        if (value == null)
            value = "";
        int len = WriteEncoding.GetByteCount(value);
        if (len > ushort.MaxValue || s.Length - count < sizeof(ushort) + len)
            return false;
        BitConverter.TryWriteBytes(s.Slice(count, s.Length - count), (ushort)len);
        count += sizeof(ushort);
        WriteEncoding.GetBytes(value, s.Slice(count, len));
        count += (ushort)len;
        return true;
    }}

    // Reads a list count and checks that `count * minElement` bytes remain.
    public static ushort ReadCount(ReadOnlySpan<byte> s, ref ushort count, int minElement)
    {{
        Need(s, count, sizeof(ushort));
        ushort n = BitConverter.ToUInt16(s.Slice(count, s.Length - count));
        count += sizeof(ushort);
        if ((long)n * minElement > s.Length - count)
            throw new System.IO.InvalidDataException("list count " + n + " cannot fit in the remaining " + (s.Length - count) + " bytes");
        return n;
    }}

    public static bool WriteCount(Span<byte> s, ref ushort count, int n)
    {{
        if (n > ushort.MaxValue || s.Length - count < sizeof(ushort))
            return false;
        BitConverter.TryWriteBytes(s.Slice(count, s.Length - count), (ushort)n);
        count += sizeof(ushort);
        return true;
    }}
}}

"#
    )
}

fn packet_class(w: &mut String, p: &Packet) {
    let _ = writeln!(w, "public class {} : IPacket\n{{", p.name);
    members(w, &p.fields, 1);
    let _ = writeln!(
        w,
        "    public ushort Protocol {{ get {{ return (ushort)PacketID.{}; }} }}\n",
        p.name
    );

    // Read
    w.push_str("    public void Read(ArraySegment<byte> segment)\n    {\n");
    w.push_str("        ushort count;\n");
    let _ = writeln!(
        w,
        "        ReadOnlySpan<byte> s = PacketWire.Frame(segment, (ushort)PacketID.{}, out count);",
        p.name
    );
    read_fields(w, &p.fields, 2);
    let _ = writeln!(
        w,
        "        PacketWire.End(s, count, \"{}\");\n    }}\n",
        p.name
    );

    // Write
    let fail = "return default(ArraySegment<byte>);";
    w.push_str("    public ArraySegment<byte> Write()\n    {\n");
    w.push_str("        ArraySegment<byte> segment = SendBufferHelper.Open(4096);\n");
    w.push_str(
        "        if (segment.Array == null)\n            return default(ArraySegment<byte>);\n",
    );
    w.push_str(
        "        Span<byte> s = new Span<byte>(segment.Array, segment.Offset, Math.Min(segment.Count, PacketWire.MaxWriteSize));\n",
    );
    w.push_str("        ushort count = 0;\n");
    let _ = writeln!(w, "        if (s.Length < 4)\n            {fail}");
    w.push_str("        count += sizeof(ushort);\n");
    let _ = writeln!(
        w,
        "        BitConverter.TryWriteBytes(s.Slice(count, s.Length - count), (ushort)PacketID.{});",
        p.name
    );
    w.push_str("        count += sizeof(ushort);\n");
    write_fields(w, &p.fields, 2, fail);
    w.push_str("        BitConverter.TryWriteBytes(s, count);\n");
    w.push_str("        return SendBufferHelper.Close(count);\n    }\n}\n\n");
}

/// Field declarations and nested element classes.
fn members(w: &mut String, fields: &[Field], indent: usize) {
    let pad = "    ".repeat(indent);
    for field in fields {
        if let FieldKind::List(sub) = &field.kind {
            let class = upper_first(&field.name);
            let _ = writeln!(w, "{pad}public class {class}\n{pad}{{");
            members(w, sub, indent + 1);
            let _ = writeln!(
                w,
                "{pad}    public void Read(ReadOnlySpan<byte> s, ref ushort count)\n{pad}    {{"
            );
            read_fields(w, sub, indent + 2);
            let _ = writeln!(w, "{pad}    }}\n");
            let _ = writeln!(
                w,
                "{pad}    public bool Write(Span<byte> s, ref ushort count)\n{pad}    {{"
            );
            write_fields(w, sub, indent + 2, "return false;");
            let _ = writeln!(w, "{pad}        return true;\n{pad}    }}\n{pad}}}");
            let _ = writeln!(
                w,
                "{pad}public List<{class}> {0}s = new List<{class}>();\n",
                field.name
            );
        } else {
            let _ = writeln!(w, "{pad}public {} {};", cs_type(field), field.name);
        }
    }
    if fields.iter().any(|f| !matches!(f.kind, FieldKind::List(_))) {
        w.push('\n');
    }
}

fn read_fields(w: &mut String, fields: &[Field], indent: usize) {
    let pad = "    ".repeat(indent);
    for field in fields {
        let name = &field.name;
        match &field.kind {
            FieldKind::Scalar(s) => {
                let ty = s.pdl_name();
                let _ = writeln!(w, "{pad}PacketWire.Need(s, count, sizeof({ty}));");
                match s {
                    Scalar::Byte => {
                        let _ = writeln!(w, "{pad}this.{name} = s[count];");
                    }
                    Scalar::SByte => {
                        let _ = writeln!(w, "{pad}this.{name} = (sbyte)s[count];");
                    }
                    _ => {
                        let _ = writeln!(
                            w,
                            "{pad}this.{name} = BitConverter.{}(s.Slice(count, s.Length - count));",
                            bit_converter_read(*s)
                        );
                    }
                }
                let _ = writeln!(w, "{pad}count += sizeof({ty});");
            }
            FieldKind::String => {
                let _ = writeln!(w, "{pad}this.{name} = PacketWire.ReadString(s, ref count);");
            }
            FieldKind::List(sub) => {
                let class = upper_first(name);
                let _ = writeln!(
                    w,
                    "{pad}{{\n{pad}    ushort __n = PacketWire.ReadCount(s, ref count, {min});\n{pad}    if (this.{name}s == null)\n{pad}        this.{name}s = new List<{class}>(__n);\n{pad}    else\n{pad}        this.{name}s.Clear();\n{pad}    for (int __i = 0; __i < __n; __i++)\n{pad}    {{\n{pad}        {class} __e = new {class}();\n{pad}        __e.Read(s, ref count);\n{pad}        this.{name}s.Add(__e);\n{pad}    }}\n{pad}}}",
                    min = min_size(sub)
                );
            }
        }
    }
}

fn write_fields(w: &mut String, fields: &[Field], indent: usize, fail: &str) {
    let pad = "    ".repeat(indent);
    for field in fields {
        let name = &field.name;
        match &field.kind {
            FieldKind::Scalar(s) => {
                let ty = s.pdl_name();
                let _ = writeln!(
                    w,
                    "{pad}if (s.Length - count < sizeof({ty}))\n{pad}    {fail}"
                );
                match s {
                    Scalar::Byte => {
                        let _ = writeln!(w, "{pad}s[count] = this.{name};");
                    }
                    Scalar::SByte => {
                        let _ = writeln!(w, "{pad}s[count] = (byte)this.{name};");
                    }
                    _ => {
                        let _ = writeln!(
                            w,
                            "{pad}BitConverter.TryWriteBytes(s.Slice(count, s.Length - count), this.{name});"
                        );
                    }
                }
                let _ = writeln!(w, "{pad}count += sizeof({ty});");
            }
            FieldKind::String => {
                let _ = writeln!(
                    w,
                    "{pad}if (!PacketWire.WriteString(s, ref count, this.{name}))\n{pad}    {fail}"
                );
            }
            FieldKind::List(_) => {
                let class = upper_first(name);
                let _ = writeln!(
                    w,
                    "{pad}{{\n{pad}    int __n = this.{name}s == null ? 0 : this.{name}s.Count;\n{pad}    if (!PacketWire.WriteCount(s, ref count, __n))\n{pad}        {fail}\n{pad}    for (int __i = 0; __i < __n; __i++)\n{pad}    {{\n{pad}        {class} __e = this.{name}s[__i];\n{pad}        if (__e == null || !__e.Write(s, ref count))\n{pad}            {fail}\n{pad}    }}\n{pad}}}"
                );
            }
        }
    }
}

fn packet_manager(schema: &Schema, server: bool) -> String {
    let mut w = generated_notice(schema);
    let side = if server {
        "server: registers every packet whose name does not start with S_"
    } else {
        "client: registers every packet whose name starts with S_"
    };
    let mut register = String::new();
    for p in schema
        .packets
        .iter()
        .filter(|p| p.name.starts_with("S_") != server)
    {
        let _ = writeln!(
            register,
            "        _makeFunc[(ushort)PacketID.{0}] = MakePacket<{0}>;\n        _handler[(ushort)PacketID.{0}] = PacketHandler.{0}Handler;\n",
            p.name
        );
    }
    let _ = write!(
        w,
        r#"using System;
using System.Collections.Generic;
using ServerCore;

// PacketManager for the {side}.
public class PacketManager
{{
    #region Singleton
    static PacketManager _instance = new PacketManager();
    public static PacketManager Instance {{ get {{ return _instance; }} }}
    #endregion

    PacketManager()
    {{
        Register();
    }}

    Dictionary<ushort, Func<PacketSession, ArraySegment<byte>, IPacket>> _makeFunc = new Dictionary<ushort, Func<PacketSession, ArraySegment<byte>, IPacket>>();
    Dictionary<ushort, Action<PacketSession, IPacket>> _handler = new Dictionary<ushort, Action<PacketSession, IPacket>>();

    // Called (if set) with every frame OnRecvPacket drops: malformed (Read threw
    // System.IO.InvalidDataException) or with an id this side does not register.
    public Action<PacketSession, ArraySegment<byte>, Exception> OnInvalidPacket;

    public void Register()
    {{
{register}    }}

    // Reads size and id, builds the packet and calls onRecvCallback if given, else
    // HandlePacket. A malformed frame is dropped (see OnInvalidPacket), never mis-read.
    public void OnRecvPacket(PacketSession session, ArraySegment<byte> buffer, Action<PacketSession, IPacket> onRecvCallback = null)
    {{
        if (buffer.Array == null || buffer.Count < 4)
        {{
            Invalid(session, buffer, new System.IO.InvalidDataException("frame shorter than its 4-byte header"));
            return;
        }}

        ushort count = 0;
        ushort size = BitConverter.ToUInt16(buffer.Array, buffer.Offset);
        count += 2;
        ushort id = BitConverter.ToUInt16(buffer.Array, buffer.Offset + count);
        count += 2;
        if (size < count || size > buffer.Count)
        {{
            Invalid(session, buffer, new System.IO.InvalidDataException("frame size field " + size + " does not fit the " + buffer.Count + "-byte buffer"));
            return;
        }}

        Func<PacketSession, ArraySegment<byte>, IPacket> func = null;
        if (_makeFunc.TryGetValue(id, out func) == false)
        {{
            Invalid(session, buffer, new System.IO.InvalidDataException("unexpected packet id " + id));
            return;
        }}

        IPacket packet;
        try
        {{
            packet = func.Invoke(session, buffer);
        }}
        catch (System.IO.InvalidDataException e)
        {{
            Invalid(session, buffer, e);
            return;
        }}

        if (onRecvCallback != null)
            onRecvCallback.Invoke(session, packet);
        else
            HandlePacket(session, packet);
    }}

    T MakePacket<T>(PacketSession session, ArraySegment<byte> buffer) where T : IPacket, new()
    {{
        T pkt = new T();
        pkt.Read(buffer);
        return pkt;
    }}

    public void HandlePacket(PacketSession session, IPacket packet)
    {{
        Action<PacketSession, IPacket> action = null;
        if (_handler.TryGetValue(packet.Protocol, out action))
            action.Invoke(session, packet);
    }}

    void Invalid(PacketSession session, ArraySegment<byte> buffer, Exception error)
    {{
        if (OnInvalidPacket != null)
            OnInvalidPacket.Invoke(session, buffer, error);
    }}
}}
"#
    );
    w
}
