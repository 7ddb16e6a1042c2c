//! phigate: a messaging gateway that decides, per recipient, which events a
//! healthcare plugin receives and which PHI it may see.
//!
//! See ARCHITECTURE.md for a map of the modules and the invariants between
//! them.

pub mod actions;
pub mod auth;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod gateway;
pub mod keys;
pub mod load;
mod private_file;
pub mod rules;
pub mod signing;
pub mod store;
