//! Interned dimension values. A rollup row names its subscription, product,
//! agent, API, gateway, backend, deployment, model and region; read back
//! from the lake, each value is interned once per process, so the rows of a
//! month hold 16-byte copies of one string each, compare and hash by address,
//! and group without allocating.
//!
//! The table only grows: it holds each distinct value the process has read,
//! which the rollups' cardinality bounds (thousands of names, not requests).

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::{LazyLock, RwLock};

/// An interned string: equal values are the same address.
#[derive(Clone, Copy)]
pub struct Sym(&'static str);

static TABLE: LazyLock<RwLock<HashSet<&'static str>>> = LazyLock::new(Default::default);

impl Sym {
    /// The one copy of `text`.
    pub fn new(text: &str) -> Sym {
        if let Some(found) = TABLE.read().unwrap_or_else(|e| e.into_inner()).get(text) {
            return Sym(found);
        }
        let mut table = TABLE.write().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = table.get(text) {
            return Sym(found);
        }
        let leaked: &'static str = Box::leak(text.to_owned().into_boxed_str());
        table.insert(leaked);
        Sym(leaked)
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl std::ops::Deref for Sym {
    type Target = str;
    fn deref(&self) -> &str {
        self.0
    }
}

impl AsRef<str> for Sym {
    fn as_ref(&self) -> &str {
        self.0
    }
}

impl PartialEq for Sym {
    fn eq(&self, other: &Sym) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for Sym {}

impl Hash for Sym {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.0.as_ptr() as usize);
    }
}

/// By the text, so sorted output reads alphabetically.
impl Ord for Sym {
    fn cmp(&self, other: &Sym) -> std::cmp::Ordering {
        if self == other {
            std::cmp::Ordering::Equal
        } else {
            self.0.cmp(other.0)
        }
    }
}

impl PartialOrd for Sym {
    fn partial_cmp(&self, other: &Sym) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq<str> for Sym {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Sym {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl From<&str> for Sym {
    fn from(text: &str) -> Sym {
        Sym::new(text)
    }
}

impl From<&String> for Sym {
    fn from(text: &String) -> Sym {
        Sym::new(text)
    }
}

impl From<String> for Sym {
    fn from(text: String) -> Sym {
        Sym::new(&text)
    }
}

impl From<Sym> for String {
    fn from(sym: Sym) -> String {
        sym.0.to_owned()
    }
}

impl std::fmt::Debug for Sym {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.0, f)
    }
}

impl std::fmt::Display for Sym {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl serde::Serialize for Sym {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl Default for Sym {
    fn default() -> Sym {
        Sym::new("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_are_one_symbol_and_order_by_text() {
        let a = Sym::new("sub-b");
        let b = Sym::new(&String::from("sub-b"));
        assert_eq!(a, b);
        assert!(std::ptr::eq(a.as_str(), b.as_str()));
        assert_ne!(a, Sym::new("sub-a"));
        let mut sorted = [Sym::new("zeta"), a, Sym::new("alpha")];
        sorted.sort();
        let texts: Vec<&str> = sorted.iter().map(|s| s.as_str()).collect();
        assert_eq!(texts, ["alpha", "sub-b", "zeta"]);
        assert_eq!(a, "sub-b");
        assert_eq!(format!("{a}/{a:?}"), "sub-b/\"sub-b\"");
    }

    #[test]
    fn symbols_from_many_threads_agree() {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    (0..200)
                        .map(|i| Sym::new(&format!("v{i}")))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let all: Vec<Vec<Sym>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        for other in &all[1..] {
            assert_eq!(&all[0], other);
        }
    }
}
