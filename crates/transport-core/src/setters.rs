//! The setters of Kite's options types, written once.

/// Writes a builder-style setter for each public field named, with the
/// field's name: `options.field(value)` returns the options with the field
/// set. Every options type in Kite has public fields documented with their
/// defaults and these setters, so a value is read as `options.field` and
/// set in a chain. Used by Kite's crates; hidden from the docs.
///
/// ```
/// #[derive(Default)]
/// pub struct Options {
///     /// How many. Default: 0.
///     pub count: u32,
/// }
/// kite_transport_core::option_setters!(Options { count: u32 });
///
/// assert_eq!(Options::default().count(3).count, 3);
/// ```
#[doc(hidden)]
#[macro_export]
macro_rules! option_setters {
    ($type:ty { $($field:ident: $value:ty),* $(,)? }) => {
        impl $type {
            $(
                #[doc = concat!("Sets `", stringify!($field), "`; the field says what it is for and its default.")]
                #[must_use]
                pub fn $field(mut self, value: $value) -> Self {
                    self.$field = value;
                    self
                }
            )*
        }
    };
}
