//! Every schema error carries file:line:column.

use packet_gen::{parse_pdl, FieldKind, Scalar, StringEncoding};

/// Parses `source` expecting an error at `line:col` whose message contains `needle`.
fn err_at(source: &str, line: u32, col: u32, needle: &str) {
    let err = parse_pdl(source, "PDL.xml").expect_err("schema must be rejected");
    assert_eq!((err.line(), err.column()), (line, col), "{err}");
    assert!(err.message().contains(needle), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("PDL.xml:{line}:{col}: ")),
        "{err}"
    );
}

#[test]
fn unknown_element() {
    err_at(
        "<PDL>\n  <packet name=\"C_A\">\n    <integer name=\"x\"/>\n  </packet>\n</PDL>",
        3,
        5,
        "unknown element <integer>",
    );
    err_at(
        "<PDL>\n <pakcet name=\"C_A\"/>\n</PDL>",
        2,
        2,
        "unknown element <pakcet>",
    );
}

#[test]
fn missing_name() {
    err_at(
        "<PDL>\n  <packet name=\"C_A\">\n    <int/>\n  </packet>\n</PDL>",
        3,
        5,
        "no 'name' attribute",
    );
    err_at(
        "<PDL>\n  <packet>\n  </packet>\n</PDL>",
        2,
        3,
        "no 'name' attribute",
    );
}

#[test]
fn duplicate_packet() {
    err_at(
        "<PDL>\n  <packet name=\"C_A\"/>\n  <packet name=\"C_B\"/>\n    <packet name=\"C_A\"/>\n</PDL>",
        4,
        5,
        "duplicate packet name 'C_A' (first defined at 2:3)",
    );
}

#[test]
fn duplicate_field() {
    err_at(
        "<PDL>\n  <packet name=\"C_A\">\n    <int name=\"x\"/>\n    <float name=\"x\"/>\n  </packet>\n</PDL>",
        4,
        5,
        "duplicate field name 'x' (first defined at 3:5)",
    );
    // Inside a list level.
    err_at(
        "<PDL><packet name=\"C_A\">\n<list name=\"l\"><int name=\"a\"/><int name=\"a\"/></list></packet></PDL>",
        2,
        31,
        "duplicate field name 'a' (first defined at 2:16)",
    );
    // Same name at different levels is fine.
    parse_pdl(
        "<PDL><packet name=\"C_A\"><int name=\"a\"/><list name=\"l\"><int name=\"a\"/></list></packet></PDL>",
        "PDL.xml",
    )
    .unwrap();
    // Different PDL names, same Rust name.
    err_at(
        "<PDL><packet name=\"C_A\"><int name=\"posX\"/><int name=\"pos_x\"/></packet></PDL>",
        1,
        43,
        "both become the Rust field 'pos_x'",
    );
}

#[test]
fn bad_encoding() {
    err_at(
        "<?xml version=\"1.0\"?>\n<PDL encoding=\"latin1\">\n</PDL>",
        2,
        1,
        "unsupported string encoding 'latin1'",
    );
}

#[test]
fn too_many_packets() {
    let mut source = String::from("<PDL>\n");
    for i in 0..65_536 {
        source.push_str(&format!("<packet name=\"P{i}\"/>\n"));
    }
    source.push_str("</PDL>\n");
    err_at(&source, 65_537, 1, "too many packets");
    // Exactly 65,535 is fine.
    let cut = source.rfind("<packet").unwrap();
    let ok = format!("{}</PDL>\n", &source[..cut]);
    let schema = parse_pdl(&ok, "PDL.xml").unwrap();
    assert_eq!(schema.packets.len(), 65_535);
    assert_eq!(schema.packets.last().unwrap().id, 65_535);
}

#[test]
fn invalid_identifiers() {
    err_at(
        "<PDL>\n<packet name=\"1A\"/></PDL>",
        2,
        1,
        "not a valid identifier",
    );
    err_at(
        "<PDL>\n<packet name=\"C-A\"/></PDL>",
        2,
        1,
        "not a valid identifier",
    );
    err_at(
        "<PDL>\n<packet name=\"c_a\"/></PDL>",
        2,
        1,
        "upper-case letter",
    );
    err_at("<PDL>\n<packet name=\"Packet\"/></PDL>", 2, 1, "reserved");
    // Names the generated JavaScript module exports or relies on.
    err_at("<PDL>\n<packet name=\"PacketId\"/></PDL>", 2, 1, "reserved");
    err_at("<PDL>\n<packet name=\"Map\"/></PDL>", 2, 1, "reserved");
    err_at(
        "<PDL><packet name=\"C_A\">\n<int name=\"encode\"/></packet></PDL>",
        2,
        1,
        "JavaScript property 'encode'",
    );
    err_at(
        "<PDL><packet name=\"C_A\">\n<string name=\"constructor\"/></packet></PDL>",
        2,
        1,
        "JavaScript property 'constructor'",
    );
    // A list element is a plain object: `encode` is an ordinary property there.
    assert!(parse_pdl(
        r#"<PDL><packet name="C_A"><list name="x"><int name="encode"/></list></packet></PDL>"#,
        "PDL.xml"
    )
    .is_ok());
    err_at(
        "<PDL><packet name=\"C_A\">\n<int name=\"self\"/></packet></PDL>",
        2,
        1,
        "cannot be used as a Rust identifier",
    );
    err_at(
        "<PDL><packet name=\"C_A\">\n<int name=\"int\"/></packet></PDL>",
        2,
        1,
        "C# keyword",
    );
    err_at(
        "<PDL><packet name=\"C_A\">\n<int name=\"__x\"/></packet></PDL>",
        2,
        1,
        "reserved for generated code",
    );
    err_at(
        "<PDL><packet name=\"C_A\">\n<int name=\"Read\"/></packet></PDL>",
        2,
        1,
        "C# member 'Read'",
    );
    err_at(
        "<PDL><packet name=\"CChat\"/>\n<packet name=\"C_Chat\"/></PDL>",
        2,
        1,
        "same snake_case name 'c_chat'",
    );
}

#[test]
fn other_errors_have_positions() {
    err_at(
        "<PDL>\n<packet name=\"C_A\" nmae=\"x\"/></PDL>",
        2,
        1,
        "unknown attribute 'nmae'",
    );
    err_at("<Schema/>", 1, 1, "root element must be <PDL>");
    err_at("<PDL>\n  hello\n</PDL>", 1, 6, "unexpected text");
    let err = parse_pdl("<PDL>\n<packet name=\"A\">\n</PDL>", "x.xml").unwrap_err();
    assert!(err.to_string().starts_with("x.xml:3:"), "{err}");
    assert!(err.message().contains("malformed XML"), "{err}");
}

#[test]
fn parses_the_course_format() {
    let schema = parse_pdl(include_str!("data/game.xml"), "game.xml").unwrap();
    assert_eq!(schema.encoding, StringEncoding::Utf16Le);
    let names: Vec<(&str, u16)> = schema
        .packets
        .iter()
        .map(|p| (p.name.as_str(), p.id))
        .collect();
    assert_eq!(
        names,
        [
            ("S_BroadcastEnterGame", 1),
            ("C_LeaveGame", 2),
            ("S_BroadcastLeaveGame", 3),
            ("S_PlayerList", 4),
            ("C_Move", 5),
            ("S_BroadcastMove", 6),
            ("C_Chat", 7),
            ("S_Chat", 8)
        ]
    );
    let list = &schema.packets[3].fields[0];
    match &list.kind {
        FieldKind::List(fields) => {
            assert_eq!(fields[0].kind, FieldKind::Scalar(Scalar::Bool));
            assert_eq!(fields.len(), 5);
        }
        other => panic!("{other:?}"),
    }
    let utf8 = parse_pdl(include_str!("data/utf8.xml"), "utf8.xml").unwrap();
    assert_eq!(utf8.encoding, StringEncoding::Utf8);
    // A BOM and comments are fine; an empty PDL is valid.
    assert!(parse_pdl("\u{feff}<PDL><!-- none --></PDL>", "e.xml")
        .unwrap()
        .packets
        .is_empty());
}
