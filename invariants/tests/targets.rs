//! The fuzz targets' checks, run as ordinary tests: on every seed (valid
//! encodings, so each round trip runs on real data) and on every input a
//! fuzzer once found failing (`fuzz/regressions/<target>/`). A meta-test
//! keeps the fuzz targets and the table of checks in step.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use outpost_invariants::{run, seeds::seeds, TARGETS};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn names_in(dir: &Path, strip: &str) -> BTreeSet<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeSet::new();
    };
    entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(strip).map(str::to_string))
        .collect()
}

/// A fuzz target without a row here would check nothing the tests know
/// of; a row without a fuzz target would never be fuzzed.
#[test]
fn every_fuzz_target_has_a_check_and_every_check_a_target() {
    let files = names_in(&fuzz_dir().join("fuzz_targets"), ".rs");
    let rows: BTreeSet<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(files, rows, "fuzz/fuzz_targets/*.rs and TARGETS differ");
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    for name in &rows {
        let file =
            std::fs::read_to_string(fuzz_dir().join(format!("fuzz_targets/{name}.rs"))).unwrap();
        assert!(
            file.contains(&format!("run({name:?}")),
            "{name}.rs runs another check"
        );
        assert!(
            manifest.contains(&format!("name = {name:?}")),
            "fuzz/Cargo.toml has no [[bin]] {name}"
        );
    }
}

#[test]
fn every_check_holds_on_its_seeds() {
    for (name, _) in TARGETS {
        let seeds = seeds(name);
        assert!(!seeds.is_empty(), "{name} has no seeds");
        for seed in seeds {
            run(name, &seed);
        }
    }
}

/// Every input a fuzzer found failing, kept as `fuzz/regressions/<target>/*`.
#[test]
fn regressions_stay_fixed() {
    let dir = fuzz_dir().join("regressions");
    let mut ran = 0;
    for target in names_in(&dir, "") {
        assert!(
            TARGETS.iter().any(|(n, _)| *n == target),
            "fuzz/regressions/{target} names no target"
        );
        for entry in std::fs::read_dir(dir.join(&target)).unwrap() {
            let path = entry.unwrap().path();
            let input = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&target, &input));
            assert!(outcome.is_ok(), "{} fails again", path.display());
            ran += 1;
        }
    }
    println!("{ran} regression inputs");
}
