//! Writes each fuzz target's seeds into `DIR/<target>/` (fuzz/run.sh
//! starts every corpus from them): `cargo run -p outpost-invariants
//! --example seeds -- DIR`.

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .expect("usage: seeds DIR (each target's seeds go to DIR/<target>/)");
    for (target, _) in outpost_invariants::TARGETS {
        let to = std::path::Path::new(&dir).join(target);
        std::fs::create_dir_all(&to)?;
        for (i, seed) in outpost_invariants::seeds::seeds(target).iter().enumerate() {
            std::fs::write(to.join(format!("seed-{i}")), seed)?;
        }
    }
    Ok(())
}
