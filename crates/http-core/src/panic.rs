//! Containing a panicking application: the panic becomes an error of the
//! request it happened in, and the server and its other connections go on.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::BoxError;

/// Runs `poll` (one poll of application code), turning a panic into an
/// error that carries its message. The default panic hook has already
/// printed it; the caller logs what it does about it.
pub(crate) fn catch<T>(poll: impl FnOnce() -> T) -> Result<T, BoxError> {
    catch_unwind(AssertUnwindSafe(poll)).map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_string());
        format!("the application panicked: {message}").into()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_panic_becomes_an_error_with_its_message() {
        let caught = super::catch(|| -> u8 { panic!("on purpose") });
        assert_eq!(caught.unwrap_err().to_string(), "the application panicked: on purpose");
        assert_eq!(super::catch(|| 7).unwrap(), 7);
    }
}
