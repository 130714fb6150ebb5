//! New mail for the assistant (issue 7): which changes are real arrivals, and the person's
//! rules for which of them reach it and when. Pure domain logic with an injected clock; the
//! watcher, the tools and the delivery channels drive it.

pub mod arrival;
pub mod quiet;
pub mod rules;
