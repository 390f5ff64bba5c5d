//! One module per subcommand: local ones read files, remote ones talk to a server through
//! [`crate::client::Client`].

pub mod app;
pub mod apply;
pub mod audit;
pub mod changes;
pub mod demo;
pub mod dry_run;
pub mod env;
pub mod eval;
pub mod experiment;
pub mod flags;
pub mod refs;
pub mod release;
pub mod report;
pub mod rollout;
pub mod serve;
pub mod simulate;
pub mod simulate_ab;
pub mod token;
pub mod validate;
