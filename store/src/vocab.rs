//! The words state is kept in: each a closed set, parsed at the edge (a
//! request, a config file, a stored row) and carried typed everywhere after.
//! Stored as the same text as always, so no column changed. A stored word that
//! is none of a set's fails its read (a column decode error of the state
//! database, or [`crate::StoreError::Integrity`]): the store's fault, a 500,
//! never a user's mistake.

/// A value outside its closed set: what it was meant to be, the value, and
/// the words it could have been.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?} (one of: {})", known.join(", "))]
pub struct UnknownWord {
    pub what: &'static str,
    pub value: String,
    pub known: Vec<&'static str>,
}

/// Declares a closed set of words: the enum, its text (serde, `Display`,
/// `FromStr`, `TryFrom<String>` for sqlx's `try_from` rows) and `ALL` in the
/// declared order.
macro_rules! words {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($what:literal) {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize, utoipa::ToSchema,
        )]
        $vis enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every word of the set, in its declared order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Every word, comma separated, for messages saying what a
            /// value may be.
            pub fn listed() -> String {
                Self::ALL.iter().map(|w| w.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::vocab::UnknownWord;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::vocab::UnknownWord {
                        what: $what,
                        value: s.to_owned(),
                        known: Self::ALL.iter().map(|w| w.as_str()).collect(),
                    }),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::vocab::UnknownWord;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }
    };
}

words! {
    /// Where an alert episode is: its condition holds but has not held long
    /// enough, it fired, or it ended.
    pub enum EpisodeState ("episode state") {
        Pending = "pending",
        Firing = "firing",
        Resolved = "resolved",
    }
}

impl EpisodeState {
    /// Pending or firing: the episode has not ended.
    pub fn is_open(self) -> bool {
        self != EpisodeState::Resolved
    }
}

words! {
    /// Each kind of state that counts its changes in `state_versions`, so a
    /// reader caching what it derived from it knows when to derive again.
    pub enum StateVersion ("state version") {
        Rollups = "rollups",
        Prices = "prices",
        Capacity = "capacity",
        Ownership = "ownership",
        Closes = "closes",
        Budgets = "budgets",
        GatewayViews = "gateway_views",
        Keys = "keys",
        Lineage = "lineage",
        Alerts = "alerts",
        AlertRules = "alert_rules",
    }
}

impl StateVersion {
    /// Whether a report is computed from this state, so its change must
    /// invalidate cached reports ([`crate::StateDb::inputs_version`]).
    pub fn is_report_input(self) -> bool {
        use StateVersion::*;
        match self {
            Rollups | Prices | Capacity | Ownership | Closes | Budgets => true,
            GatewayViews | Keys | Lineage | Alerts | AlertRules => false,
        }
    }
}

words! {
    /// What a budget caps: the dimension its `scope_id` is a value of (the
    /// chargeback dimension of the same name).
    pub enum BudgetScope ("budget scope") {
        Subscription = "subscription",
        Product = "product",
        CostCentre = "cost_centre",
        Agent = "agent",
    }
}

words! {
    /// What gateways do once a budget is exhausted.
    pub enum BudgetAction ("budget action") {
        Notify = "notify",
        Throttle = "throttle",
        Downgrade = "downgrade",
        Block = "block",
    }
}

words! {
    /// Where a budget stands in its period: under every warning threshold,
    /// past one, or used up.
    pub enum BudgetState ("budget state") {
        Ok = "ok",
        Warning = "warning",
        Exhausted = "exhausted",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_reads_back_as_itself() {
        for state in EpisodeState::ALL {
            assert_eq!(state.as_str().parse::<EpisodeState>(), Ok(*state));
            assert_eq!(
                serde_json::to_string(state).unwrap(),
                format!("\"{state}\"")
            );
        }
        for version in StateVersion::ALL {
            assert_eq!(version.as_str().parse::<StateVersion>(), Ok(*version));
        }
        for scope in BudgetScope::ALL {
            assert_eq!(scope.as_str().parse::<BudgetScope>(), Ok(*scope));
        }
        for action in BudgetAction::ALL {
            assert_eq!(action.as_str().parse::<BudgetAction>(), Ok(*action));
        }
        for state in BudgetState::ALL {
            assert_eq!(state.as_str().parse::<BudgetState>(), Ok(*state));
        }
    }

    #[test]
    fn an_unknown_word_names_what_it_could_have_been() {
        let e = "fired".parse::<EpisodeState>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown episode state \"fired\" (one of: pending, firing, resolved)"
        );
        assert!(EpisodeState::try_from("".to_owned()).is_err());
    }
}
