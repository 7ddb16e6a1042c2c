//! The HTTPS side of phigate: the TLS listener and the files a start
//! needs.

pub mod bootstrap;
pub mod metrics;
pub mod routes;
pub mod serve;
pub mod state;
pub mod tls;
