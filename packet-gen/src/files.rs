//! Reading a PDL file and writing generated files: for the command-line tool and for
//! build scripts.

use std::path::{Path, PathBuf};

use crate::emit::{generate_csharp, generate_js, generate_rust};
use crate::error::Error;
use crate::model::Schema;
use crate::schema::parse_pdl;

/// A language the generator writes, with the files it produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Lang {
    /// `packets.rs`, see [`generate_rust`].
    Rust,
    /// `GenPackets.cs`, `ClientPacketManager.cs` and `ServerPacketManager.cs`, see
    /// [`generate_csharp`].
    CSharp,
    /// `packets.js` and `packets.d.ts`, see [`generate_js`].
    Js,
}

impl Lang {
    /// The generated files for `schema` as `(file name, content)` pairs, in a fixed order.
    ///
    /// # Examples
    ///
    /// ```
    /// use packet_gen::Lang;
    ///
    /// let schema = packet_gen::parse_pdl(r#"<PDL><packet name="C_Ping"/></PDL>"#, "PDL.xml")
    ///     .unwrap();
    /// let names: Vec<&str> = Lang::Js.generate(&schema).into_iter().map(|(n, _)| n).collect();
    /// assert_eq!(names, ["packets.js", "packets.d.ts"]);
    /// ```
    #[must_use]
    pub fn generate(self, schema: &Schema) -> Vec<(&'static str, String)> {
        match self {
            Lang::Rust => vec![("packets.rs", generate_rust(schema))],
            Lang::CSharp => {
                let files = generate_csharp(schema);
                vec![
                    ("GenPackets.cs", files.gen_packets),
                    ("ClientPacketManager.cs", files.client_packet_manager),
                    ("ServerPacketManager.cs", files.server_packet_manager),
                ]
            }
            Lang::Js => {
                let files = generate_js(schema);
                vec![
                    ("packets.js", files.module),
                    ("packets.d.ts", files.declarations),
                ]
            }
        }
    }
}

/// Reads and parses the PDL at `path`, naming it by its file name only (so generated
/// headers and error messages do not depend on the directory).
///
/// # Examples
///
/// ```no_run
/// let schema = packet_gen::read_schema("game-server/PDL.xml".as_ref())?;
/// println!("{} packets", schema.packets.len());
/// # Ok::<(), packet_gen::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::Io`] if the file cannot be read (or is not UTF-8), [`Error::Schema`] if it is
/// not a valid PDL.
pub fn read_schema(path: &Path) -> Result<Schema, Error> {
    let source = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    Ok(parse_pdl(&source, &name)?)
}

/// Writes the files of `lang` for `schema` into `out_dir` (created if missing) and returns
/// their paths. A file already holding exactly the new content is left untouched, so its
/// modification time (and whatever rebuilds on it) does not change.
///
/// # Examples
///
/// ```no_run
/// use packet_gen::Lang;
///
/// let schema = packet_gen::read_schema("game-server/PDL.xml".as_ref())?;
/// packet_gen::write_generated(&schema, Lang::Js, "web".as_ref())?; // web/packets.js, .d.ts
/// # Ok::<(), packet_gen::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::Io`] if the directory cannot be created or a file cannot be written.
pub fn write_generated(schema: &Schema, lang: Lang, out_dir: &Path) -> Result<Vec<PathBuf>, Error> {
    std::fs::create_dir_all(out_dir).map_err(|source| Error::Io {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::new();
    for (name, content) in lang.generate(schema) {
        let path = out_dir.join(name);
        write_if_changed(&path, &content)?;
        written.push(path);
    }
    Ok(written)
}

/// For `build.rs`: reads the PDL at `pdl_path`, prints `cargo:rerun-if-changed=<path>` and
/// writes the generated Rust to `$OUT_DIR/packets.rs`.
///
/// Include it with `mod packets { include!(concat!(env!("OUT_DIR"), "/packets.rs")); }`.
/// The file is only rewritten when its content changes.
///
/// # Examples
///
/// ```no_run
/// // in build.rs's main:
/// packet_gen::build_rust("PDL.xml").unwrap_or_else(|e| panic!("{e}"));
/// ```
///
/// # Errors
///
/// [`Error::Io`] if the PDL cannot be read or the output written, [`Error::Schema`] if the
/// PDL is invalid, [`Error::MissingOutDir`] outside a build script.
pub fn build_rust(pdl_path: impl AsRef<Path>) -> Result<(), Error> {
    build(pdl_path.as_ref(), Lang::Rust)
}

/// For `build.rs`: reads the PDL at `pdl_path`, prints `cargo:rerun-if-changed=<path>` and
/// writes the JavaScript module to `$OUT_DIR/packets.js` and its TypeScript declarations
/// to `$OUT_DIR/packets.d.ts`.
///
/// Meant for servers that embed a web client in their binary: serve the module with
/// `include_str!(concat!(env!("OUT_DIR"), "/packets.js"))` (as `text/javascript`) and
/// `import` it from the page. Files are only rewritten when their content changes.
///
/// # Examples
///
/// ```no_run
/// // in build.rs's main, next to build_rust:
/// packet_gen::build_js("PDL.xml").unwrap_or_else(|e| panic!("{e}"));
/// ```
///
/// # Errors
///
/// As [`build_rust`].
pub fn build_js(pdl_path: impl AsRef<Path>) -> Result<(), Error> {
    build(pdl_path.as_ref(), Lang::Js)
}

fn build(pdl_path: &Path, lang: Lang) -> Result<(), Error> {
    println!("cargo:rerun-if-changed={}", pdl_path.display());
    let out_dir = std::env::var_os("OUT_DIR").ok_or(Error::MissingOutDir)?;
    let schema = read_schema(pdl_path)?;
    write_generated(&schema, lang, Path::new(&out_dir))?;
    Ok(())
}

/// Writes `content` to `path` unless it already holds exactly that.
fn write_if_changed(path: &Path, content: &str) -> Result<(), Error> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == content) {
        return Ok(());
    }
    std::fs::write(path, content).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}
