//! The domain's one error type: bad input, conflicts and missing rows are the
//! caller's to show; database and internal errors are logged and never shown.

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// Input that breaks a rule; `field` names the input (`username`, `redirect_uri`, ...).
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The request collides with what exists (a duplicate name).
    #[error("{0}")]
    Conflict(String),
    #[error("not found")]
    NotFound,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

impl DomainError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        DomainError::Invalid {
            field,
            message: message.into(),
        }
    }

    /// Whether the caller's input caused it (as opposed to the server or the database).
    pub fn is_caller_error(&self) -> bool {
        matches!(
            self,
            DomainError::Invalid { .. } | DomainError::Conflict(_) | DomainError::NotFound
        )
    }
}

pub type DomainResult<T> = Result<T, DomainError>;
