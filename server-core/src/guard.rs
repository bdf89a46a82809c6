//! The one guarded path for user code: every hook, job, task and timer server-core runs
//! goes through [`catch`], so a panic in game code is turned into a message the caller
//! reports (and acts on: close that session, drop that job) instead of unwinding through
//! an I/O thread.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f`, turning a panic into its message.
///
/// `AssertUnwindSafe` is sound here in the sense `catch_unwind` asks about: after a panic
/// the caller never looks at the state `f` was changing as if the call had completed. A
/// session whose hook panicked is closed; a job's state is kept as the job left it, which
/// [`JobQueue`](crate::JobQueue) documents.
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| panic_message(&*payload).to_owned())
}

/// The text of a panic payload (`panic!("...")` gives a `&str` or a `String`).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic payload)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message() {
        assert_eq!(catch(|| 5), Ok(5));
        assert_eq!(
            catch(|| -> u8 { panic!("static text") }),
            Err("static text".into())
        );
        let n = 3;
        assert_eq!(
            catch(|| -> u8 { panic!("formatted {n}") }),
            Err("formatted 3".into())
        );
        assert_eq!(
            catch(|| std::panic::panic_any(17u32)),
            Err("(non-string panic payload)".into())
        );
    }
}
