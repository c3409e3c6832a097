//! Shared by the fixture tests: where the captured machines live and how to inspect them.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};

use sluice_tuning::{assess, inspect, propose, Finding, InspectOptions, Machine, Placement};

/// The real 2-core VM these tests were written on, captured with fixtures/capture.sh.
pub const VM_2CORE: &str = "vm-2core";
/// Hand-built 2-socket, 64-CPU machine with NVMe (fixtures/make-2socket-64core.py).
pub const SOCKET2_64CPU: &str = "2socket-64core";

pub fn fixture(shape: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(shape)
}

pub fn machine(shape: &str, data_dir: &str) -> Machine {
    inspect(&InspectOptions::captured(
        fixture(shape),
        vec![PathBuf::from(data_dir)],
    ))
    .expect("fixture inspects")
}

pub fn tuned(shape: &str, data_dir: &str) -> (Machine, Placement, Vec<Finding>) {
    let machine = machine(shape, data_dir);
    let placement = propose(&machine);
    let findings = assess(&machine, &placement);
    (machine, placement, findings)
}

/// Copies a fixture tree (symlinks as symlinks) so a test may write into it.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        let kind = entry.file_type().expect("file type");
        if kind.is_symlink() {
            let link = std::fs::read_link(entry.path()).expect("read_link");
            std::os::unix::fs::symlink(link, &target).expect("symlink");
        } else if kind.is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

pub fn read(root: &Path, rel: &str) -> String {
    std::fs::read_to_string(root.join(rel))
        .expect("readable")
        .trim()
        .to_string()
}
