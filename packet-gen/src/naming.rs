//! Identifier helpers shared by the schema validator and both generators.

/// `posX` -> `pos_x`, `playerId` -> `player_id`, `HP` -> `hp`,
/// `C_LeaveGame` -> `c_leave_game`, `HTTPServer` -> `http_server`.
pub(crate) fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev = if i > 0 { Some(chars[i - 1]) } else { None };
            let next = chars.get(i + 1).copied();
            let boundary = match prev {
                None | Some('_') => false,
                Some(p) if p.is_ascii_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_ascii_uppercase() => next.is_some_and(|n| n.is_ascii_lowercase()),
                Some(_) => false,
            };
            if boundary {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `player` -> `Player` (only the first letter changes).
pub(crate) fn upper_first(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// Plain ASCII identifier: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn is_ascii_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Rust keywords (strict and reserved, all editions up to 2024).
const RUST_KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for",
    "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
    "self", "Self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where",
    "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
];

/// Keywords that cannot be written as raw identifiers (`r#self` is invalid).
const RUST_NOT_RAW: &[&str] = &["self", "Self", "super", "crate", "_"];

/// `true` if `ident` cannot be used in Rust at all, not even as `r#ident`.
pub(crate) fn is_rust_unusable(ident: &str) -> bool {
    RUST_NOT_RAW.contains(&ident)
}

/// The identifier as written in Rust source: keywords get the `r#` prefix.
pub(crate) fn rust_ident(ident: &str) -> String {
    if RUST_KEYWORDS.contains(&ident) {
        format!("r#{ident}")
    } else {
        ident.to_string()
    }
}

/// C# reserved keywords (contextual keywords such as `var` or `value` are legal names).
const CSHARP_KEYWORDS: &[&str] = &[
    "abstract",
    "as",
    "base",
    "bool",
    "break",
    "byte",
    "case",
    "catch",
    "char",
    "checked",
    "class",
    "const",
    "continue",
    "decimal",
    "default",
    "delegate",
    "do",
    "double",
    "else",
    "enum",
    "event",
    "explicit",
    "extern",
    "false",
    "finally",
    "fixed",
    "float",
    "for",
    "foreach",
    "goto",
    "if",
    "implicit",
    "in",
    "int",
    "interface",
    "internal",
    "is",
    "lock",
    "long",
    "namespace",
    "new",
    "null",
    "object",
    "operator",
    "out",
    "override",
    "params",
    "private",
    "protected",
    "public",
    "readonly",
    "ref",
    "return",
    "sbyte",
    "sealed",
    "short",
    "sizeof",
    "stackalloc",
    "static",
    "string",
    "struct",
    "switch",
    "this",
    "throw",
    "true",
    "try",
    "typeof",
    "uint",
    "ulong",
    "unchecked",
    "unsafe",
    "ushort",
    "using",
    "virtual",
    "void",
    "volatile",
    "while",
];

/// `true` if `ident` is a reserved C# keyword.
pub(crate) fn is_csharp_keyword(ident: &str) -> bool {
    CSHARP_KEYWORDS.contains(&ident)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_examples() {
        for (input, want) in [
            ("posX", "pos_x"),
            ("playerId", "player_id"),
            ("isSelf", "is_self"),
            ("HP", "hp"),
            ("C_LeaveGame", "c_leave_game"),
            ("S_BroadcastEnterGame", "s_broadcast_enter_game"),
            ("S_PlayerList", "s_player_list"),
            ("HTTPServer", "http_server"),
            ("item2Id", "item2_id"),
            ("already_snake", "already_snake"),
            ("_private", "_private"),
            ("chat", "chat"),
        ] {
            assert_eq!(snake_case(input), want, "{input}");
        }
    }

    #[test]
    fn upper_first_examples() {
        assert_eq!(upper_first("player"), "Player");
        assert_eq!(upper_first("skill_info"), "Skill_info");
        assert_eq!(upper_first("X"), "X");
    }

    #[test]
    fn identifiers() {
        assert!(is_ascii_identifier("posX"));
        assert!(is_ascii_identifier("_a1"));
        assert!(!is_ascii_identifier("1a"));
        assert!(!is_ascii_identifier("a-b"));
        assert!(!is_ascii_identifier(""));
        assert!(!is_ascii_identifier("é"));
        assert_eq!(rust_ident("type"), "r#type");
        assert_eq!(rust_ident("pos_x"), "pos_x");
        assert!(is_rust_unusable("self"));
        assert!(is_csharp_keyword("int"));
        assert!(!is_csharp_keyword("var"));
    }
}
