//! The validated schema every emitter works from: packets, fields and their wire sizes.

/// A validated PDL schema: every packet, in file order, with its id.
///
/// Built only by [`parse_pdl`](crate::parse_pdl), so every `Schema` has passed
/// validation (unique names, valid identifiers, at most 65,535 packets).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Schema {
    /// File name (no directories) the schema was read from, quoted in generated headers.
    pub file_name: String,
    /// How `string` fields are encoded on the wire.
    pub encoding: StringEncoding,
    /// Packets in file order; `packets[i].id == i + 1`.
    pub packets: Vec<Packet>,
}

/// Wire encoding of `string` fields, chosen by the root `encoding` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StringEncoding {
    /// UTF-16 little-endian (the course's `Encoding.Unicode`); the default.
    #[default]
    Utf16Le,
    /// UTF-8, selected by `<PDL encoding="utf8">`.
    Utf8,
}

impl StringEncoding {
    /// The encoding's name as generated comments spell it (`UTF-16LE`, `UTF-8`).
    pub(crate) fn wire_name(self) -> &'static str {
        match self {
            StringEncoding::Utf16Le => "UTF-16LE",
            StringEncoding::Utf8 => "UTF-8",
        }
    }
}

/// One `<packet>` of the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Packet {
    /// Name exactly as written in the PDL (`C_Chat`).
    pub name: String,
    /// Wire id: 1 for the first packet of the file, 2 for the second, ...
    pub id: u16,
    /// Fields in file (= wire) order.
    pub fields: Vec<Field>,
}

/// One field of a packet or of a list element.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Field {
    /// Name exactly as written in the PDL (`playerId`).
    pub name: String,
    /// Type of the field.
    pub kind: FieldKind,
}

/// Type of a [`Field`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldKind {
    /// A fixed-size number or `bool`.
    Scalar(Scalar),
    /// `[u16 byte length][bytes]` in the schema's [`StringEncoding`].
    String,
    /// `[u16 count]` followed by `count` elements, each made of these fields.
    List(Vec<Field>),
}

/// Fixed-size PDL types. All little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scalar {
    /// `bool`: 1 byte, non-zero is true.
    Bool,
    /// `byte`: u8.
    Byte,
    /// `sbyte`: i8.
    SByte,
    /// `short`: i16.
    Short,
    /// `ushort`: u16.
    UShort,
    /// `int`: i32.
    Int,
    /// `uint`: u32.
    UInt,
    /// `long`: i64.
    Long,
    /// `ulong`: u64.
    ULong,
    /// `float`: IEEE-754 f32.
    Float,
    /// `double`: IEEE-754 f64.
    Double,
}

impl Scalar {
    /// Size in bytes on the wire.
    pub fn size(self) -> usize {
        match self {
            Scalar::Bool | Scalar::Byte | Scalar::SByte => 1,
            Scalar::Short | Scalar::UShort => 2,
            Scalar::Int | Scalar::UInt | Scalar::Float => 4,
            Scalar::Long | Scalar::ULong | Scalar::Double => 8,
        }
    }

    /// The PDL element name (`int`), which is also the C# type keyword.
    pub fn pdl_name(self) -> &'static str {
        match self {
            Scalar::Bool => "bool",
            Scalar::Byte => "byte",
            Scalar::SByte => "sbyte",
            Scalar::Short => "short",
            Scalar::UShort => "ushort",
            Scalar::Int => "int",
            Scalar::UInt => "uint",
            Scalar::Long => "long",
            Scalar::ULong => "ulong",
            Scalar::Float => "float",
            Scalar::Double => "double",
        }
    }

    /// The Rust type (`i32`); also the name of the generated JavaScript reader's and
    /// writer's method for it.
    pub(crate) fn rust_type(self) -> &'static str {
        match self {
            Scalar::Bool => "bool",
            Scalar::Byte => "u8",
            Scalar::SByte => "i8",
            Scalar::Short => "i16",
            Scalar::UShort => "u16",
            Scalar::Int => "i32",
            Scalar::UInt => "u32",
            Scalar::Long => "i64",
            Scalar::ULong => "u64",
            Scalar::Float => "f32",
            Scalar::Double => "f64",
        }
    }

    pub(crate) fn from_pdl_name(name: &str) -> Option<Scalar> {
        Some(match name {
            "bool" => Scalar::Bool,
            "byte" => Scalar::Byte,
            "sbyte" => Scalar::SByte,
            "short" => Scalar::Short,
            "ushort" => Scalar::UShort,
            "int" => Scalar::Int,
            "uint" => Scalar::UInt,
            "long" => Scalar::Long,
            "ulong" => Scalar::ULong,
            "float" => Scalar::Float,
            "double" => Scalar::Double,
            _ => return None,
        })
    }
}

impl Field {
    /// Smallest number of bytes this field can take on the wire
    /// (a scalar's size; 2 for a string or a list, whose length prefix is always present).
    pub fn min_size(&self) -> usize {
        match &self.kind {
            FieldKind::Scalar(s) => s.size(),
            FieldKind::String | FieldKind::List(_) => 2,
        }
    }

    /// Exact wire size if it does not depend on the value (no string or list).
    pub fn fixed_size(&self) -> Option<usize> {
        match &self.kind {
            FieldKind::Scalar(s) => Some(s.size()),
            FieldKind::String | FieldKind::List(_) => None,
        }
    }
}

/// Exact wire size of a sequence of fields if none is a string or a list.
pub(crate) fn fixed_size(fields: &[Field]) -> Option<usize> {
    fields.iter().map(Field::fixed_size).sum()
}

/// Smallest wire size of a sequence of fields.
pub(crate) fn min_size(fields: &[Field]) -> usize {
    fields.iter().map(Field::min_size).sum()
}
