//! A small typed map of connection features.

use std::any::{Any, TypeId};
use std::fmt;

/// A map from a type to one value of that type: the features a connection
/// carries (Kestrel's `IFeatureCollection`).
///
/// Transports and middleware add features (the TLS handshake result, the
/// negotiated protocol, anything of a user's own); the HTTP core and the
/// application read them. A connection has a handful at most, so the map is
/// a short vector searched in order. It allocates nothing until the first
/// insert.
///
/// # Examples
///
/// ```
/// use kite_transport_core::Features;
///
/// #[derive(Debug, PartialEq)]
/// struct Tenant(&'static str);
///
/// let mut features = Features::new();
/// features.insert(Tenant("blue"));
/// assert_eq!(features.get::<Tenant>(), Some(&Tenant("blue")));
/// ```
#[derive(Default)]
pub struct Features {
    entries: Vec<(TypeId, Box<dyn Any + Send + Sync>)>,
}

impl Features {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `value`, returning the value of the same type it replaces.
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) -> Option<T> {
        let id = TypeId::of::<T>();
        for entry in &mut self.entries {
            if entry.0 == id {
                let old = std::mem::replace(&mut entry.1, Box::new(value));
                return old.downcast::<T>().ok().map(|b| *b);
            }
        }
        self.entries.push((id, Box::new(value)));
        None
    }

    /// The value of type `T`, if one is stored.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        let id = TypeId::of::<T>();
        self.entries.iter().find(|entry| entry.0 == id).and_then(|entry| entry.1.downcast_ref::<T>())
    }

    /// The value of type `T`, mutably, if one is stored.
    pub fn get_mut<T: Send + Sync + 'static>(&mut self) -> Option<&mut T> {
        let id = TypeId::of::<T>();
        self.entries.iter_mut().find(|entry| entry.0 == id).and_then(|entry| entry.1.downcast_mut::<T>())
    }

    /// Removes and returns the value of type `T`.
    pub fn remove<T: Send + Sync + 'static>(&mut self) -> Option<T> {
        let id = TypeId::of::<T>();
        let index = self.entries.iter().position(|entry| entry.0 == id)?;
        self.entries.swap_remove(index).1.downcast::<T>().ok().map(|b| *b)
    }

    /// How many features are stored.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no feature is stored.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl fmt::Debug for Features {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Features").field("len", &self.entries.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_replace_remove() {
        let mut features = Features::new();
        assert!(features.is_empty());
        assert_eq!(features.insert(1u32), None);
        assert_eq!(features.insert("a"), None);
        assert_eq!(features.insert(2u32), Some(1));
        assert_eq!(features.get::<u32>(), Some(&2));
        *features.get_mut::<u32>().unwrap() = 3;
        assert_eq!(features.remove::<u32>(), Some(3));
        assert_eq!(features.get::<u32>(), None);
        assert_eq!(features.get::<&str>(), Some(&"a"));
        assert_eq!(features.len(), 1);
    }
}
