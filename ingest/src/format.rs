//! The input formats Tollgate reads.

use crate::record::Record;
use crate::{IngestError, apim, canonical};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Tollgate's own JSON lines, one object per request (`docs/canonical-format.md`).
    Canonical,
    /// Azure API Management diagnostic export (`GatewayLogs`, `GatewayLlmLogs`).
    Apim,
}

impl Format {
    pub const ALL: [Format; 2] = [Format::Canonical, Format::Apim];

    pub fn name(self) -> &'static str {
        match self {
            Format::Canonical => "canonical",
            Format::Apim => "apim",
        }
    }

    /// Parses one line into its records, each a [`Record`] or the reason to
    /// quarantine it. A line holds one record, or several in an envelope.
    pub fn parse_line(self, bytes: &[u8], out: &mut Vec<Result<Record, String>>) {
        match self {
            Format::Canonical => out.push(canonical::parse_line(bytes)),
            Format::Apim => apim::parse_line(bytes, out),
        }
    }
}

impl std::str::FromStr for Format {
    type Err = IngestError;
    fn from_str(s: &str) -> Result<Self, IngestError> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| IngestError::UnknownFormat {
                given: s.to_owned(),
                known: Format::ALL.map(Format::name).join(", "),
            })
    }
}
