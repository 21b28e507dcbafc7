//! Forwarding `AsyncWrite` to a field: the write half of every IO wrapper
//! that changes only how it reads.

/// Implements [`tokio::io::AsyncWrite`] for a type by forwarding each
/// method, vectored writes included, to one of its fields, which must be
/// `AsyncWrite + Unpin`. Generic parameters go in brackets first.
///
/// # Examples
///
/// ```
/// use kite_transport_core::delegate_async_write;
///
/// /// Reads as it likes; writes straight through.
/// struct Wrapper {
///     inner: tokio::io::DuplexStream,
/// }
/// delegate_async_write!(Wrapper, inner);
///
/// struct Generic<T>(T);
/// delegate_async_write!([T: tokio::io::AsyncWrite + Unpin] Generic<T>, 0);
/// ```
#[macro_export]
macro_rules! delegate_async_write {
    ([$($generics:tt)*] $type:ty, $field:tt) => {
        impl<$($generics)*> $crate::__tokio::io::AsyncWrite for $type {
            fn poll_write(
                mut self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                buf: &[u8],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                $crate::__tokio::io::AsyncWrite::poll_write(::std::pin::Pin::new(&mut self.$field), cx, buf)
            }

            fn poll_write_vectored(
                mut self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                bufs: &[::std::io::IoSlice<'_>],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                $crate::__tokio::io::AsyncWrite::poll_write_vectored(::std::pin::Pin::new(&mut self.$field), cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                $crate::__tokio::io::AsyncWrite::is_write_vectored(&self.$field)
            }

            fn poll_flush(
                mut self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                $crate::__tokio::io::AsyncWrite::poll_flush(::std::pin::Pin::new(&mut self.$field), cx)
            }

            fn poll_shutdown(
                mut self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                $crate::__tokio::io::AsyncWrite::poll_shutdown(::std::pin::Pin::new(&mut self.$field), cx)
            }
        }
    };
    // Without generics; after the bracketed arm, which a type would not parse.
    ($type:ty, $field:tt) => {
        $crate::delegate_async_write!([] $type, $field);
    };
}
