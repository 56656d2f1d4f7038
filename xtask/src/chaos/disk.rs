//! A broker's disk for the chaos run: a size-limited tmpfs mounted for it
//! alone, so one broker's disk can be filled without touching the machine's
//! (or the other brokers'). Filling writes a filler file beside the data
//! directory until the filesystem refuses more; space "returns" when the
//! filler is deleted. Unmounted on drop.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

pub struct Disk {
    mount_point: PathBuf,
}

impl Disk {
    /// Mount a tmpfs of `bytes` at `dir/disk` (created).
    pub fn mount(dir: &Path, bytes: u64) -> Result<Self> {
        let mount_point = dir.join("disk");
        std::fs::create_dir_all(&mount_point)?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&mount_point)
            .output()
            .context("running mount")?;
        if !out.status.success() {
            bail!(
                "mounting a tmpfs at {} failed (the chaos suite needs root): {}",
                mount_point.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let disk = Disk { mount_point };
        std::fs::create_dir_all(disk.data_dir())?;
        Ok(disk)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.mount_point.join("data")
    }

    fn filler(&self) -> PathBuf {
        self.mount_point.join("filler")
    }

    /// Write the filler until the filesystem is full; returns its size.
    pub fn fill(&self) -> Result<u64> {
        let mut file = File::create(self.filler())?;
        let chunk = vec![0xAAu8; 1 << 20];
        let mut written = 0u64;
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => return Err(e).context("writing the filler"),
            }
        }
        Ok(written)
    }

    /// Give the space back.
    pub fn free(&self) -> Result<()> {
        match std::fs::remove_file(self.filler()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        let out = Command::new("umount").arg(&self.mount_point).output();
        if !matches!(&out, Ok(o) if o.status.success()) {
            // A process still holding a file open keeps the mount busy; a
            // lazy unmount lets it go once that process is gone.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(&self.mount_point)
                .output();
        }
    }
}
