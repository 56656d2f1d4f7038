//! Authentication and authorization.
//!
//! Every request has a **principal**, Kafka-style `User:<name>`
//! ([`principal`]): the user a bearer token belongs to, or the common name
//! of a verified TLS client certificate, or `User:ANONYMOUS`. Bearer tokens
//! are checked by the [`Authenticator`]: first the static tokens of
//! `auth.tokens.file` (kube-apiserver's CSV format, [`static_tokens`],
//! read again when the file changes), then, with
//! `auth.token.review.enable`, the Kubernetes API server
//! ([`token_review`]: ServiceAccount tokens, answers cached in
//! [`token_cache`]).
//!
//! With `authorizer.enable`, every request is checked against the ACLs
//! ([`acl`]) before it does anything ([`Authorizer`]): superusers
//! (`super.users`) may do everything, a matching Deny wins over any Allow,
//! and without a matching Allow the answer is no (default deny, unless
//! `allow.everyone.if.no.acl.found`). ACLs live in the metadata store and
//! reach every broker through its metadata watch, so checks read memory,
//! never the store. A refusal is `PERMISSION_DENIED` naming the principal,
//! the operation and the resource, is counted in
//! `runnel_authorization_denied`, and is logged on the `runnel::audit`
//! target (allowed requests are logged there at debug level).

pub mod acl;
mod authenticator;
mod authorizer;
pub mod principal;
pub mod static_tokens;
pub mod token_cache;
pub mod token_review;

pub use authenticator::Authenticator;
pub use authorizer::Authorizer;
pub use principal::{ANONYMOUS, Principal};
pub use static_tokens::StaticTokens;
