//! Generates the packet structs and the client dispatcher from the server's schema.

fn main() {
    println!("cargo:rerun-if-changed=../game-server/PDL.xml");
    if let Err(e) = packet_gen::build_rust("../game-server/PDL.xml") {
        panic!("packet generation from ../game-server/PDL.xml failed: {e}");
    }
}
