//! The schema model, the PDL.xml parser and its validation.

use std::collections::HashMap;
use std::fmt;

use crate::naming::{
    is_ascii_identifier, is_csharp_keyword, is_rust_unusable, snake_case, upper_first,
};

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

    fn from_pdl_name(name: &str) -> Option<Scalar> {
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

/// A PDL file that cannot be turned into code, with the position of the offending node.
///
/// `Display` prints `file:line:column: message` (line and column 1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError {
    file: String,
    line: u32,
    column: u32,
    message: String,
}

impl SchemaError {
    fn new(file: &str, line: u32, column: u32, message: impl Into<String>) -> Self {
        SchemaError {
            file: file.to_string(),
            line,
            column,
            message: message.into(),
        }
    }

    /// File name as passed to [`parse_pdl`](crate::parse_pdl).
    pub fn file(&self) -> &str {
        &self.file
    }

    /// 1-based line of the offending node.
    pub fn line(&self) -> u32 {
        self.line
    }

    /// 1-based column of the offending node.
    pub fn column(&self) -> u32 {
        self.column
    }

    /// What is wrong, without the position.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

impl std::error::Error for SchemaError {}

/// Names a packet may not take because the generated Rust or C# already uses them
/// at the top level.
const RESERVED_PACKET_NAMES: &[&str] = &[
    // Rust
    "Packet",
    "DecodeError",
    "EncodeError",
    "ServerPacketHandler",
    "ClientPacketHandler",
    "HEADER_SIZE",
    "String",
    "Vec",
    "Option",
    "Result",
    "Ok",
    "Err",
    "Some",
    "None",
    "Box",
    // C#
    "PacketID",
    "IPacket",
    "PacketManager",
    "PacketHandler",
    "PacketWire",
    "PacketSession",
    "Session",
    "SendBufferHelper",
    "ServerCore",
    "System",
    "Encoding",
    "BitConverter",
    "ArraySegment",
    "Span",
    "ReadOnlySpan",
    "List",
    "Dictionary",
    "Func",
    "Action",
    "Math",
    "Exception",
    "InvalidDataException",
];

const MAX_PACKETS: usize = 65_535;

/// Type names the generated C# uses unqualified inside packet classes: a member with one
/// of these names would hide the type.
const CSHARP_TYPES_USED_IN_CLASSES: &[&str] = &[
    "BitConverter",
    "PacketWire",
    "PacketID",
    "Math",
    "List",
    "Span",
    "ReadOnlySpan",
    "ArraySegment",
    "SendBufferHelper",
    "System",
];

fn csharp_reserved_members(methods: &[&str]) -> Vec<String> {
    methods
        .iter()
        .chain(CSHARP_TYPES_USED_IN_CLASSES)
        .map(|s| s.to_string())
        .collect()
}

struct Parser<'a, 'input> {
    doc: &'a roxmltree::Document<'input>,
    file: &'a str,
}

impl<'a, 'input> Parser<'a, 'input> {
    fn err(&self, node: roxmltree::Node<'_, '_>, message: impl Into<String>) -> SchemaError {
        let pos = self.doc.text_pos_at(node.range().start);
        SchemaError::new(self.file, pos.row, pos.col, message)
    }

    fn pos_string(&self, node: roxmltree::Node<'_, '_>) -> String {
        let pos = self.doc.text_pos_at(node.range().start);
        format!("{}:{}", pos.row, pos.col)
    }

    /// Rejects attributes other than `allowed` (typos such as `nmae` must not pass silently).
    fn check_attributes(
        &self,
        node: roxmltree::Node<'_, '_>,
        allowed: &[&str],
    ) -> Result<(), SchemaError> {
        for attr in node.attributes() {
            if attr.namespace().is_some() || !allowed.contains(&attr.name()) {
                return Err(self.err(
                    node,
                    format!(
                        "unknown attribute '{}' on <{}>",
                        attr.name(),
                        node.tag_name().name()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Child elements of `node`; non-blank text is an error.
    fn element_children(
        &self,
        node: roxmltree::Node<'a, 'input>,
    ) -> Result<Vec<roxmltree::Node<'a, 'input>>, SchemaError> {
        let mut out = Vec::new();
        for child in node.children() {
            if child.is_element() {
                out.push(child);
            } else if child.is_text() && !child.text().unwrap_or("").trim().is_empty() {
                return Err(self.err(
                    child,
                    format!("unexpected text inside <{}>", node.tag_name().name()),
                ));
            }
        }
        Ok(out)
    }

    fn name_attr(&self, node: roxmltree::Node<'_, '_>) -> Result<String, SchemaError> {
        let tag = node.tag_name().name();
        let name = node
            .attribute("name")
            .ok_or_else(|| self.err(node, format!("<{tag}> has no 'name' attribute")))?;
        if !is_ascii_identifier(name) {
            return Err(self.err(
                node,
                format!(
                    "'{name}' is not a valid identifier (use ASCII letters, digits and '_', \
                     not starting with a digit)"
                ),
            ));
        }
        if name.starts_with("__") {
            return Err(self.err(
                node,
                format!("'{name}': names starting with '__' are reserved for generated code"),
            ));
        }
        if is_rust_unusable(&snake_case(name)) || is_rust_unusable(name) {
            return Err(self.err(
                node,
                format!("'{name}' cannot be used as a Rust identifier"),
            ));
        }
        if is_csharp_keyword(name) {
            return Err(self.err(node, format!("'{name}' is a C# keyword")));
        }
        Ok(name.to_string())
    }

    fn parse(&self) -> Result<Schema, SchemaError> {
        let root = self.doc.root_element();
        if root.tag_name().name() != "PDL" || root.tag_name().namespace().is_some() {
            return Err(self.err(
                root,
                format!(
                    "root element must be <PDL>, found <{}>",
                    root.tag_name().name()
                ),
            ));
        }
        self.check_attributes(root, &["encoding"])?;
        let encoding = match root.attribute("encoding") {
            None => StringEncoding::Utf16Le,
            Some("utf8") => StringEncoding::Utf8,
            Some(other) => {
                return Err(self.err(
                    root,
                    format!(
                        "unsupported string encoding '{other}' (the only accepted value is \
                         \"utf8\"; omit the attribute for UTF-16LE)"
                    ),
                ))
            }
        };

        let mut packets: Vec<Packet> = Vec::new();
        let mut by_name: HashMap<String, roxmltree::Node<'_, '_>> = HashMap::new();
        let mut by_snake: HashMap<String, (String, roxmltree::Node<'_, '_>)> = HashMap::new();
        for node in self.element_children(root)? {
            if node.tag_name().name() != "packet" || node.tag_name().namespace().is_some() {
                return Err(self.err(
                    node,
                    format!(
                        "unknown element <{}> (expected <packet>)",
                        node.tag_name().name()
                    ),
                ));
            }
            if packets.len() == MAX_PACKETS {
                return Err(self.err(
                    node,
                    format!("too many packets: at most {MAX_PACKETS} fit a u16 id"),
                ));
            }
            self.check_attributes(node, &["name"])?;
            let name = self.name_attr(node)?;
            if let Some(first) = by_name.get(&name) {
                return Err(self.err(
                    node,
                    format!(
                        "duplicate packet name '{name}' (first defined at {})",
                        self.pos_string(*first)
                    ),
                ));
            }
            if !name.starts_with(|c: char| c.is_ascii_uppercase()) {
                return Err(self.err(
                    node,
                    format!("packet name '{name}' must start with an ASCII upper-case letter"),
                ));
            }
            if RESERVED_PACKET_NAMES.contains(&name.as_str()) {
                return Err(self.err(
                    node,
                    format!("packet name '{name}' is reserved by the generated code"),
                ));
            }
            let snake = snake_case(&name);
            if snake == "unexpected" {
                return Err(self.err(
                    node,
                    format!("packet name '{name}' would clash with the on_unexpected handler"),
                ));
            }
            if let Some((other, first)) = by_snake.get(&snake) {
                return Err(self.err(
                    node,
                    format!(
                        "packet '{name}' and packet '{other}' (at {}) have the same snake_case \
                         name '{snake}'",
                        self.pos_string(*first)
                    ),
                ));
            }
            by_name.insert(name.clone(), node);
            by_snake.insert(snake, (name.clone(), node));
            let mut reserved = csharp_reserved_members(&["Protocol", "Read", "Write"]);
            reserved.push(name.clone());
            let fields = self.parse_fields(node, &reserved)?;
            let id = u16::try_from(packets.len() + 1).expect("checked against MAX_PACKETS");
            packets.push(Packet { name, id, fields });
        }
        Ok(Schema {
            file_name: self.file.to_string(),
            encoding,
            packets,
        })
    }

    /// Fields of a packet or list element. `csharp_reserved` are the member names the
    /// enclosing C# class already has (its methods and its own name).
    fn parse_fields(
        &self,
        parent: roxmltree::Node<'_, '_>,
        csharp_reserved: &[String],
    ) -> Result<Vec<Field>, SchemaError> {
        let mut fields = Vec::new();
        let mut pdl_names: HashMap<String, roxmltree::Node<'_, '_>> = HashMap::new();
        let mut rust_names: HashMap<String, (String, roxmltree::Node<'_, '_>)> = HashMap::new();
        let mut cs_names: HashMap<String, (String, roxmltree::Node<'_, '_>)> = HashMap::new();
        for node in self.element_children(parent)? {
            let tag = node.tag_name().name();
            if node.tag_name().namespace().is_some() {
                return Err(self.err(node, format!("unknown element <{tag}> (namespaced)")));
            }
            let scalar = Scalar::from_pdl_name(tag);
            if scalar.is_none() && tag != "string" && tag != "list" {
                return Err(self.err(
                    node,
                    format!(
                        "unknown element <{tag}> (expected a field type: bool, byte, sbyte, \
                         short, ushort, int, uint, long, ulong, float, double, string or list)"
                    ),
                ));
            }
            self.check_attributes(node, &["name"])?;
            let name = self.name_attr(node)?;
            if let Some(first) = pdl_names.get(&name) {
                return Err(self.err(
                    node,
                    format!(
                        "duplicate field name '{name}' (first defined at {})",
                        self.pos_string(*first)
                    ),
                ));
            }
            pdl_names.insert(name.clone(), node);

            // Names this field takes in Rust and in C#.
            let (rust_name, cs_members) = if tag == "list" {
                if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
                    return Err(self.err(
                        node,
                        format!("list name '{name}' must start with an ASCII letter"),
                    ));
                }
                let member = format!("{name}s");
                if is_csharp_keyword(&member) {
                    return Err(self.err(
                        node,
                        format!("list '{name}' would become the C# keyword '{member}'"),
                    ));
                }
                (
                    format!("{}s", snake_case(&name)),
                    vec![member, upper_first(&name)],
                )
            } else {
                (snake_case(&name), vec![name.clone()])
            };
            if let Some((other, first)) = rust_names.get(&rust_name) {
                return Err(self.err(
                    node,
                    format!(
                        "field '{name}' and field '{other}' (at {}) both become the Rust field \
                         '{rust_name}'",
                        self.pos_string(*first)
                    ),
                ));
            }
            rust_names.insert(rust_name, (name.clone(), node));
            for member in cs_members {
                if csharp_reserved.contains(&member) {
                    return Err(self.err(
                        node,
                        format!(
                            "field '{name}' would declare the C# member '{member}', which the \
                             enclosing class already has"
                        ),
                    ));
                }
                if let Some((other, first)) = cs_names.get(&member) {
                    return Err(self.err(
                        node,
                        format!(
                            "field '{name}' and field '{other}' (at {}) both declare the C# \
                             member '{member}'",
                            self.pos_string(*first)
                        ),
                    ));
                }
                cs_names.insert(member, (name.clone(), node));
            }

            let kind = if let Some(s) = scalar {
                if !self.element_children(node)?.is_empty() {
                    return Err(self.err(node, format!("<{tag}> must not contain elements")));
                }
                FieldKind::Scalar(s)
            } else if tag == "string" {
                if !self.element_children(node)?.is_empty() {
                    return Err(self.err(node, "<string> must not contain elements"));
                }
                FieldKind::String
            } else {
                let class = upper_first(&name);
                let mut reserved = csharp_reserved_members(&["Read", "Write"]);
                reserved.push(class);
                FieldKind::List(self.parse_fields(node, &reserved)?)
            };
            fields.push(Field { name, kind });
        }
        Ok(fields)
    }
}

/// See [`crate::parse_pdl`].
pub(crate) fn parse(source: &str, file_name: &str) -> Result<Schema, SchemaError> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        ..roxmltree::ParsingOptions::default()
    };
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    let doc = roxmltree::Document::parse_with_options(source, options).map_err(|e| {
        let pos = e.pos();
        SchemaError::new(file_name, pos.row, pos.col, format!("malformed XML: {e}"))
    })?;
    Parser {
        doc: &doc,
        file: file_name,
    }
    .parse()
}
