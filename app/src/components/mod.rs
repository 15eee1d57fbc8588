//! Pieces pages share.

pub mod chart;
pub mod layout;
pub mod widgets;
