//! The operator's one error type.

/// What can go wrong while reconciling.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),

    /// A Runnel broker admin call failed.
    #[error("Runnel cluster {cluster}: {source}")]
    Runnel {
        cluster: String,
        #[source]
        source: runnel_client::Error,
    },

    /// The resource asks for something that cannot be done as written.
    #[error("{0}")]
    InvalidSpec(String),

    /// An object lacks a field the API server always sets (name, namespace).
    #[error("object has no {0}")]
    MissingField(&'static str),

    /// Adding or removing a finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),

    /// A certificate or key could not be made or read.
    #[error("certificate: {0}")]
    Certificate(String),

    /// Serializing a manifest or patch failed.
    #[error("serialization: {0}")]
    Serialization(#[from] serde_json::Error),
}

impl Error {
    /// A short label for metrics (`runnel_operator_reconcile_errors_total{reason}`).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Runnel { .. } => "runnel",
            Error::InvalidSpec(_) => "invalid_spec",
            Error::MissingField(_) => "missing_field",
            Error::Finalizer(_) => "finalizer",
            Error::Certificate(_) => "certificate",
            Error::Serialization(_) => "serialization",
        }
    }
}

/// `Result` with the operator's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
