//! One module per subcommand.
pub mod admin;
pub mod bench;
pub mod serve;
pub mod status;
pub mod tune;
