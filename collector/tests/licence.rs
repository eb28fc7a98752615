//! One licence, stated the same way everywhere it is stated: the Rust
//! crates, the Python package, the Odoo addon's manifest (in Odoo's
//! vocabulary) and the LICENSE file.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the collector crate is in the workspace")
        .to_path_buf()
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo().join(relative))
        .unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

#[test]
fn every_manifest_states_lgpl_3() {
    assert_eq!(env!("CARGO_PKG_LICENSE"), "LGPL-3.0-only");
    assert!(read("hook-client/python/pyproject.toml")
        .contains(r#"license = { text = "LGPL-3.0-only" }"#));
    assert!(read("hook-client/odoo/mit_network_audit/__manifest__.py")
        .contains(r#""license": "LGPL-3","#));
    assert!(read("LICENSE").contains(
        "GNU LESSER GENERAL PUBLIC LICENSE\n                       Version 3, 29 June 2007"
    ));
    assert!(read("COPYING")
        .contains("GNU GENERAL PUBLIC LICENSE\n                       Version 3, 29 June 2007"));
}
