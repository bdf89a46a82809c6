//! Compiles `PDL.xml` into `$OUT_DIR/packets.rs` (included by `src/packets.rs`) and into
//! `$OUT_DIR/packets.js` (served to the browser page by `src/web/mod.rs`).

fn main() {
    println!("cargo::rerun-if-changed=PDL.xml");
    if let Err(e) = packet_gen::build_rust("PDL.xml") {
        panic!("packet-gen failed on PDL.xml: {e}");
    }
    if let Err(e) = packet_gen::build_js("PDL.xml") {
        panic!("packet-gen failed on PDL.xml (JavaScript): {e}");
    }
}
