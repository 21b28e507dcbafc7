//! Time on a connection: the heartbeat that drives its timeouts, the
//! minimum data rates it enforces on request bodies, and the `Date` value
//! every response carries.

pub(crate) mod body_rate;
pub(crate) mod date;
pub(crate) mod heartbeat;
pub(crate) mod stream_rates;
