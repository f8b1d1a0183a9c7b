//! Sensitivity labels: a configurable total order (least to most sensitive).
//! Sublabels (`Confidential\All Employees`) rank with their parent, so only the
//! part before the first `\` or `/` decides the rank.

use serde::Serialize;

use crate::{LineageError, Result};

/// A label's place in the taxonomy; higher is more sensitive. `Option<Rank>`
/// orders an unlabelled node (`None`) below every label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Rank(pub u8);

/// The ordered label names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taxonomy {
    names: Vec<String>,
}

/// Microsoft Purview's default taxonomy.
pub const PURVIEW: [&str; 5] = [
    "Personal",
    "Public",
    "General",
    "Confidential",
    "Highly Confidential",
];

impl Default for Taxonomy {
    fn default() -> Self {
        Self {
            names: PURVIEW.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl Taxonomy {
    /// A taxonomy from its names, least sensitive first.
    pub fn new(names: Vec<String>) -> Result<Self> {
        if names.is_empty() || names.len() > usize::from(u8::MAX) {
            return Err(LineageError::Taxonomy(format!(
                "a taxonomy needs between 1 and 255 labels, not {}",
                names.len()
            )));
        }
        for (i, name) in names.iter().enumerate() {
            let name = name.trim();
            if name.is_empty() || name.contains(['\\', '/']) {
                return Err(LineageError::Taxonomy(format!(
                    "label {} ({name:?}) must be a non-empty name without `\\` or `/`",
                    i + 1
                )));
            }
            if names[..i]
                .iter()
                .any(|n| n.trim().eq_ignore_ascii_case(name))
            {
                return Err(LineageError::Taxonomy(format!(
                    "label {name:?} is listed twice"
                )));
            }
        }
        Ok(Self {
            names: names.into_iter().map(|n| n.trim().to_string()).collect(),
        })
    }

    /// The rank of a label or sublabel, compared without regard to case.
    pub fn rank(&self, label: &str) -> Result<Rank> {
        let parent = label.split(['\\', '/']).next().unwrap_or("").trim();
        self.names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(parent))
            .and_then(|i| u8::try_from(i).ok())
            .map(Rank)
            .ok_or_else(|| LineageError::UnknownLabel {
                label: label.to_string(),
                known: self.names.join(" < "),
            })
    }

    /// The label name of a rank.
    pub fn name(&self, rank: Rank) -> &str {
        self.names
            .get(usize::from(rank.0))
            .map_or("?", String::as_str)
    }

    /// The most sensitive rank.
    pub fn top(&self) -> Rank {
        Rank(u8::try_from(self.names.len() - 1).unwrap_or(u8::MAX))
    }

    /// Names, least sensitive first.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sublabels_rank_with_their_parent_and_case_does_not_matter() {
        let t = Taxonomy::default();
        assert_eq!(t.rank("Confidential\\All Employees").unwrap(), Rank(3));
        assert_eq!(t.rank("highly confidential").unwrap(), Rank(4));
        assert!(t.rank("Personal").unwrap() < t.rank("Public").unwrap());
        assert_eq!(t.name(Rank(4)), "Highly Confidential");
        assert_eq!(t.top(), Rank(4));
    }

    #[test]
    fn an_unknown_label_names_the_known_ones() {
        let err = Taxonomy::default().rank("Secret").unwrap_err().to_string();
        assert!(
            err.contains("Secret") && err.contains("Personal < Public"),
            "{err}"
        );
    }

    #[test]
    fn a_custom_order_is_checked() {
        let t = Taxonomy::new(vec!["Open".into(), "Restricted".into()]).unwrap();
        assert_eq!(t.rank("restricted").unwrap(), Rank(1));
        assert!(Taxonomy::new(vec![]).is_err());
        assert!(Taxonomy::new(vec!["A".into(), "a".into()]).is_err());
        assert!(Taxonomy::new(vec!["A\\B".into()]).is_err());
    }
}
