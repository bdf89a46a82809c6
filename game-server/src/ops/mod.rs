//! Running the server in production: the open-file limit.

mod limits;

pub use limits::{
    descriptors_needed, open_file_shortfall, prepare_open_file_limit, raise_open_file_limit,
    OpenFileLimit, RESERVED_DESCRIPTORS,
};
