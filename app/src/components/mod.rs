//! Pieces pages share.

pub mod layout;
