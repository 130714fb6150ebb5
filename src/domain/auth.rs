//! The authorization server's rules: clients, redirect URIs, PKCE, the audience, tokens and
//! their rotation, and the connect flow that hands a person from a client to the upstream and
//! back. No HTTP here: `inbound::oauth` maps these to RFC 6749 wire shapes.

pub mod audience;
pub mod client;
pub mod flow;
pub mod pkce;
pub mod redirect;
pub mod rotation;
pub mod service;
pub mod sessions;
pub mod settings;
pub mod token;
pub mod upstream_refresh;
