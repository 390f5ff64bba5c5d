//! The Sluice SDK.
