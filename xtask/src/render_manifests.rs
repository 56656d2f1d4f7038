//! `cargo xtask render-manifests --out DIR`: the CRDs and every object the
//! operator would create for its sample Clusters
//! (`runnel_operator::manifests::samples`), one YAML file each, for
//! `scripts/test.sh` to validate against the Kubernetes OpenAPI schemas
//! with `kubernetes-validate --strict` (a misspelled or misplaced field in a
//! builder fails there, not at apply time in a real cluster).

use std::path::Path;

use anyhow::{Context, Result};
use runnel_operator::{crd, manifests};

pub fn run(out: &Path) -> Result<()> {
    // Start empty: a file left from an object that no longer exists would
    // still be validated.
    if out.exists() {
        std::fs::remove_dir_all(out).with_context(|| format!("clearing {}", out.display()))?;
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut written = 0;
    for (file, definition) in crd::crds() {
        write(&out.join(format!("crd-{file}")), &crd::to_yaml(&definition))?;
        written += 1;
    }
    for (sample, cluster) in manifests::samples::all() {
        let desired = manifests::desired(&cluster, manifests::samples::DEFAULT_IMAGE)
            .with_context(|| format!("rendering sample {sample}"))?;
        for m in desired.manifests()? {
            let file = format!("{sample}-{}-{}.yaml", m.kind.to_lowercase(), m.name);
            write(&out.join(file), &manifests::yaml(&m.object))?;
            written += 1;
        }
    }
    println!("wrote {written} manifests to {}", out.display());
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
