//! Where the Kafka clients no one here wrote live: the venv's Python
//! (confluent-kafka, kafka-python) and the check scripts in
//! `tests/kafka_clients/`, all installed by `scripts/test.sh`.

use std::path::PathBuf;

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_owned()
}

/// The test venv's Python; panics with advice when it is missing, so a
/// test fails instead of skipping.
pub fn venv_python() -> PathBuf {
    // Where scripts/test.sh makes it, whatever CARGO_TARGET_DIR says.
    let python = workspace().join("target/venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/test.sh, which installs confluent-kafka and kafka-python there",
        python.display()
    );
    python
}

/// A script in `tests/kafka_clients/`.
pub fn script(name: &str) -> PathBuf {
    workspace().join("tests/kafka_clients").join(name)
}
