//! One module per subcommand.

pub mod eval;
pub mod serve;
pub mod validate;
