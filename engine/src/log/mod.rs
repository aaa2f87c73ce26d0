//! The log: stripe reading and assembly, and the group-commit writer.

pub(crate) mod stripe;
pub(crate) mod writer;
