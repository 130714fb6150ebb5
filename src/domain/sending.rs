//! Composing and sending: drafts from what the model wrote, the person's approval of the exact
//! draft, the per-connection recipient rule, and what a submission is and how servers refuse it.

pub mod approval;
pub mod compose;
pub mod recipients;
pub mod submission;
