//! `cargo xtask crdgen`: the CRD YAML in `crds/` (and the chart's copy in
//! `charts/runnel/crds/`, once the chart exists) from the operator's types.
//! `runnel-operator`'s tests fail when the committed files drift.

use std::path::Path;

use anyhow::{Context, Result};
use runnel_operator::crd;

pub fn run() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut dirs = vec![root.join("crds")];
    let chart = root.join("charts/runnel");
    if chart.is_dir() {
        dirs.push(chart.join("crds"));
    }
    for dir in dirs {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for (file, definition) in crd::crds() {
            let path = dir.join(file);
            std::fs::write(&path, crd::to_yaml(&definition))
                .with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}
