//! One component per dashboard route.

pub mod admin;
pub mod app_detail;
pub mod home;
pub mod not_found;
pub mod security;
pub mod sessions;
pub mod sign_in;
