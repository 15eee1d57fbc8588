//! One component per dashboard route.

pub mod home;
pub mod not_found;
pub mod sign_in;
