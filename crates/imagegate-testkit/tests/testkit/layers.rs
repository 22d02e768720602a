//! Files depend one way only (issue 14): no crate of the workspace has modules that use
//! each other in a cycle. [`module_cycles`] itself is checked on a made-up crate.

use std::path::Path;

use imagegate_testkit::layers::module_cycles;

#[test]
fn no_crate_of_the_workspace_has_a_cycle_between_its_modules() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&crates).unwrap() {
        let dir = entry.unwrap().path();
        let src = dir.join("src");
        if !src.is_dir() {
            continue;
        }
        let cycles = module_cycles(&src);
        assert!(cycles.is_empty(), "{}: {cycles:#?}", src.display());
        checked.push(dir.file_name().unwrap().to_string_lossy().into_owned());
    }
    checked.sort();
    // The crates whose files were split into layers (issue 14) among them.
    for layered in [
        "imagegate",
        "imagegate-engine",
        "imagegate-policy",
        "imagegate-kube",
    ] {
        assert!(
            checked.iter().any(|c| c == layered),
            "{layered} not checked: {checked:?}"
        );
    }
    assert!(
        checked.len() >= 8,
        "only {checked:?} found under {}",
        crates.display()
    );
}

#[test]
fn a_cycle_is_found_through_crate_and_super_paths_but_a_folder_and_its_files_are_not_one() {
    let src = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let path = src.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("lib.rs", "mod a;\nmod b;\nmod c;\nmod d;\n");
    write("a.rs", "use crate::{b::Thing, c};\n");
    write("b.rs", "pub struct Thing;\nfn f() { crate::d::g() }\n");
    write("c.rs", "// crate::a::nothing: a comment is no use\n");
    write("d/mod.rs", "mod e;\npub use e::g;\npub struct Shared;\n");
    write(
        "d/e.rs",
        "use super::Shared;\n#[cfg(test)]\nmod tests {\n    use crate::a::Anything;\n}\n",
    );
    // a → b, c; b → d; d and d::e use each other (a folder and its file: not counted);
    // comments and tests are not uses.
    assert_eq!(module_cycles(src.path()), Vec::<Vec<String>>::new());

    write("d/f.rs", "use crate::d::e::Thing;\n");
    write("d/e.rs", "use super::{f::Other, Shared};\n");
    assert_eq!(
        module_cycles(src.path()),
        vec![vec!["d::e -> d::f".to_owned(), "d::f -> d::e".to_owned()]]
    );
    std::fs::remove_file(src.path().join("d/f.rs")).unwrap();

    // Through the crate root's re-exports, as `crate::Engine` for `evaluate::Engine`.
    write(
        "lib.rs",
        "mod a;\nmod b;\nmod c;\nmod d;\npub use a::{Top as Renamed, Other};\n",
    );
    write("c.rs", "fn f() -> crate::Renamed { todo!() }\n");
    assert_eq!(
        module_cycles(src.path()),
        vec![vec!["a -> c".to_owned(), "c -> a".to_owned()]]
    );
    write("c.rs", "use crate::{Other as _, b};\n");
    assert_eq!(
        module_cycles(src.path()),
        vec![vec!["a -> c".to_owned(), "c -> a".to_owned()]]
    );

    write("c.rs", "use crate::a;\n");
    assert_eq!(
        module_cycles(src.path()),
        vec![vec!["a -> c".to_owned(), "c -> a".to_owned()]]
    );
}
