//! Why an option cannot be used.

use std::fmt;
use std::time::Duration;

/// An option Kite cannot use: a value outside its range, from the
/// options' `validate`, or a name that is not one, from parsing. Each
/// variant names the option as Kestrel's configuration does
/// (`Http2.MaxFrameSize`), so a message can point at the key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OptionsError {
    /// A number outside `min..=max`.
    OutOfRange {
        /// The option, by its configuration name.
        option: &'static str,
        /// The value given.
        value: u64,
        /// The smallest allowed.
        min: u64,
        /// The largest allowed.
        max: u64,
    },
    /// A minimum data rate of 0 bytes a second: `None` turns a rate off.
    ZeroRate {
        /// `MinRequestBodyDataRate` or `MinResponseDataRate`.
        option: &'static str,
    },
    /// A minimum data rate's grace period of 1 second or less (Kestrel's
    /// rule).
    GracePeriod {
        /// `MinRequestBodyDataRate` or `MinResponseDataRate`.
        option: &'static str,
        /// The grace period given.
        grace_period: Duration,
    },
    /// A protocol set that is not one of Kestrel's names.
    UnknownProtocols(String),
}

impl OptionsError {
    /// `Ok` when `value` is within `min..=max`.
    pub(crate) fn check(option: &'static str, value: u64, min: u64, max: u64) -> Result<(), OptionsError> {
        if (min..=max).contains(&value) {
            return Ok(());
        }
        Err(OptionsError::OutOfRange { option, value, min, max })
    }
}

impl fmt::Display for OptionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionsError::OutOfRange { option, value, min, max } if *max >= u64::from(u32::MAX) => {
                write!(f, "{option} is {value}; it must be at least {min}")
            }
            OptionsError::OutOfRange { option, value, min, max } => {
                write!(f, "{option} is {value}; it must be {min} to {max}")
            }
            OptionsError::ZeroRate { option } => {
                write!(f, "{option}.BytesPerSecond must be above 0; use None to turn the rate off")
            }
            OptionsError::GracePeriod { option, grace_period } => {
                write!(f, "{option}.GracePeriod is {grace_period:?}; it must be longer than 1 second")
            }
            OptionsError::UnknownProtocols(text) => write!(
                f,
                "\"{text}\" is not a protocol: use Http1, Http2, Http1AndHttp2, Http3 or Http1AndHttp2AndHttp3"
            ),
        }
    }
}

impl std::error::Error for OptionsError {}
