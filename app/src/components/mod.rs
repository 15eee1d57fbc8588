//! Pieces pages share.

pub mod layout;
pub mod widgets;
