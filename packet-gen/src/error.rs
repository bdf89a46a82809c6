//! The error of the file-level API (reading a PDL, writing generated code).

use std::path::PathBuf;

use crate::schema::SchemaError;

/// Error of [`read_schema`](crate::read_schema), [`write_generated`](crate::write_generated),
/// [`build_rust`](crate::build_rust) and [`build_js`](crate::build_js).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading the PDL or writing the output failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// File or directory that could not be read or written.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The PDL is invalid.
    #[error("{0}")]
    Schema(#[from] SchemaError),
    /// `OUT_DIR` is not set (not running inside a build script).
    #[error("OUT_DIR is not set; call build_rust or build_js from build.rs")]
    MissingOutDir,
}
