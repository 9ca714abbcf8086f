//! Why a credential was refused. Every variant is `UNAUTHENTICATED` for the client, with a
//! message that says what was wrong without echoing the credential.

/// A refused credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the Authorization header must be `Bearer <token>`")]
    MalformedHeader,
    #[error("the credential is longer than {} bytes", super::jwt::MAX_CREDENTIAL_BYTES)]
    TooLong,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token's algorithm is not accepted")]
    BadAlgorithm,
    #[error("the token's audience is not `authenticated`")]
    BadAudience,
    #[error("the token is malformed: {0}")]
    Malformed(String),
    #[error("the token's role `{0}` is not accepted")]
    BadRole(String),
    #[error("the token's subject is not a user id")]
    BadSubject,
    #[error("no key is configured to verify this token")]
    NoKey,
    #[error("the token names no signing key (`kid`)")]
    MissingKeyId,
    #[error("the token's signing key (`kid`) is not one of the project's keys")]
    UnknownKey,
    #[error("the token's algorithm does not match its signing key")]
    KeyAlgorithmMismatch,
    #[error("the project's signing keys could not be fetched; try again shortly")]
    KeysUnavailable,
}
