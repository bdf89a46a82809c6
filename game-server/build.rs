//! Compiles `PDL.xml` into `$OUT_DIR/packets.rs` (included by `src/packets.rs`).

fn main() {
    println!("cargo::rerun-if-changed=PDL.xml");
    if let Err(e) = packet_gen::build_rust("PDL.xml") {
        panic!("packet-gen failed on PDL.xml: {e}");
    }
}
