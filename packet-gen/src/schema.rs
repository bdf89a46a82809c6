//! PDL.xml -> [`Schema`]: parsing and validation, with `file:line:column` errors.

use std::collections::HashMap;

use crate::model::{Field, FieldKind, Packet, Scalar, Schema, StringEncoding};
use crate::naming::{
    is_ascii_identifier, is_csharp_keyword, is_rust_unusable, snake_case, upper_first,
};

/// A PDL file that cannot be turned into code, with the position of the offending node.
///
/// `Display` prints `file:line:column: message` (line and column 1-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
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

/// Names a packet may not take because the generated Rust, C# or JavaScript already uses
/// them at the top level.
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
    // JavaScript: the module's exports and the globals it uses (a class of that name
    // would shadow them inside the module)
    "PacketId",
    "PacketError",
    "PacketErrorCode",
    "PacketDispatcher",
    "FrameReader",
    "BytesLike",
    "MAX_FRAME_SIZE",
    "Array",
    "ArrayBuffer",
    "ArrayBufferView",
    "BigInt",
    "DataView",
    "Error",
    "JSON",
    "Map",
    "Number",
    "Object",
    "RangeError",
    "TextDecoder",
    "TextEncoder",
    "TypeError",
    "Uint8Array",
];

/// Property names the generated JavaScript packet classes already have: a field of that
/// name would hide the method (or, in TypeScript, is not allowed at all).
const JS_PACKET_MEMBERS: &[&str] = &["encode", "constructor"];

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
            let fields = self.parse_fields(node, &reserved, JS_PACKET_MEMBERS)?;
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
    /// enclosing C# class already has (its methods and its own name), `js_reserved` the
    /// property names the enclosing JavaScript object already has.
    fn parse_fields(
        &self,
        parent: roxmltree::Node<'_, '_>,
        csharp_reserved: &[String],
        js_reserved: &[&str],
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

            // Names this field takes in Rust and in C# (the first C# member is also the
            // JavaScript property).
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
            if js_reserved.contains(&cs_members[0].as_str()) {
                return Err(self.err(
                    node,
                    format!(
                        "field '{name}' would declare the JavaScript property '{}', which \
                         the generated packet class already has",
                        cs_members[0]
                    ),
                ));
            }
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
                FieldKind::List(self.parse_fields(node, &reserved, &[])?)
            };
            fields.push(Field { name, kind });
        }
        Ok(fields)
    }
}

/// Parses and validates a PDL document.
///
/// `file_name` is used in error messages and in the header comment of generated files;
/// pass the file name without directories to keep generated output reproducible.
///
/// # Examples
///
/// ```
/// let schema = packet_gen::parse_pdl(
///     r#"<PDL><packet name="C_Chat"><string name="chat"/></packet></PDL>"#,
///     "PDL.xml",
/// )
/// .unwrap();
/// assert_eq!(schema.packets[0].name, "C_Chat");
/// assert_eq!(schema.packets[0].id, 1);
/// ```
///
/// # Errors
///
/// A [`SchemaError`] carrying `file:line:column` for malformed XML, an unknown element or
/// attribute, a field without `name`, a duplicate packet or field name, a name that is not a
/// valid Rust/C#/JavaScript identifier (or would clash in the generated code), an `encoding`
/// other than `utf8`, or more than 65,535 packets.
pub fn parse_pdl(source: &str, file_name: &str) -> Result<Schema, SchemaError> {
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
