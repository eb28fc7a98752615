//! The README's index links every document under docs/, and every link
//! from the README to a file of this repository leads somewhere.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the collector crate is in the workspace")
        .to_path_buf()
}

#[test]
fn the_readme_links_every_document_and_only_existing_files() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    for entry in std::fs::read_dir(repo().join("docs")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".md") {
            assert!(
                readme.contains(&format!("](docs/{name})")),
                "README.md does not link docs/{name}"
            );
        }
    }
    for (at, _) in readme.match_indices("](") {
        let target = &readme[at + 2..];
        let target = &target[..target.find(')').unwrap()];
        if target.starts_with("http") || target.starts_with('#') {
            continue;
        }
        let path = target.split('#').next().unwrap();
        assert!(
            repo().join(path).exists(),
            "README.md links {target}, which does not exist"
        );
    }
}
