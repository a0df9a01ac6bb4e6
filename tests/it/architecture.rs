//! ARCHITECTURE.md's layers and absences, held to the source: each module
//! imports only modules of the layers below its own (so there is no import
//! cycle), and a few things happen in one place only. Test code (after a
//! file's `#[cfg(test)]` module) is not counted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top to bottom, as ARCHITECTURE.md draws them.
const LAYERS: &[&[&str]] = &[
    &["cmd"],
    &["check"],
    &["settings", "suppress"],
    &["run"],
    &["cli"],
    &["error"],
    &["output"],
    &["ingest", "dispatch", "webhook", "call_records"],
    &["ledger"],
    &["plan", "retry", "throttle", "sandbox"],
    &["contacts"],
    &["job"],
    &["nxlink"],
    &[
        "phone",
        "clock",
        "state",
        "batch",
        "realistic",
        "schedule",
        "redial",
        "meter",
        "listen",
    ],
];

/// Every `.rs` file under `src/` but the crate roots, with its module (the
/// first part of its path) and its code before any test module.
fn sources() -> Vec<(String, PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("src is readable") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    files.sort();
    files
        .into_iter()
        .filter_map(|path| {
            let relative = path.strip_prefix(&src).expect("under src");
            let first = relative.components().next()?.as_os_str().to_str()?;
            let module = first.trim_end_matches(".rs").to_owned();
            if module == "lib" || module == "main" {
                return None;
            }
            let text = std::fs::read_to_string(&path).expect("a source file");
            let code = match text.find("#[cfg(test)]\nmod tests") {
                Some(tests) => text[..tests].to_owned(),
                None => text,
            };
            Some((module, path, code))
        })
        .collect()
}

/// The `crate::` modules `code` names, `use crate::{a::X, b}` included.
fn named_modules(code: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect()
    };
    let mut named = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level items of the group: what follows `{` or a `,` at
            // depth 0.
            let mut depth = 0;
            let mut start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if c.is_whitespace() => {}
                    _ if start => {
                        named.insert(ident(&group[i..]));
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            named.insert(ident(rest));
        }
    }
    named.retain(|m| !m.is_empty());
    named
}

fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let mut imports: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, _, code) in sources() {
        let named = named_modules(&code);
        let entry = imports.entry(module.clone()).or_default();
        entry.extend(named.into_iter().filter(|m| *m != module));
    }
    imports
}

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|layer| layer.contains(&module))
        .unwrap_or_else(|| {
            panic!("module {module} is in no layer: add it to ARCHITECTURE.md and LAYERS")
        })
}

#[test]
fn each_module_imports_only_layers_below_its_own() {
    let mut upward = Vec::new();
    for (module, named) in imports() {
        for other in named {
            if layer_of(&other) <= layer_of(&module) {
                upward.push(format!("{module} -> {other}"));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that are not downward: {upward:?}"
    );
}

#[test]
fn the_vendor_module_knows_nothing_of_the_ledger_or_the_job_file() {
    let nxlink = &imports()["nxlink"];
    for forbidden in ["ledger", "job", "plan", "dispatch", "run"] {
        assert!(!nxlink.contains(forbidden), "nxlink imports {forbidden}");
    }
}

/// Where a forbidden word appears in non-test code outside `allowed`.
fn found_outside(word: &str, allowed: &[&str]) -> Vec<String> {
    sources()
        .into_iter()
        .filter(|(module, _, code)| !allowed.contains(&module.as_str()) && code.contains(word))
        .map(|(_, path, _)| path.display().to_string())
        .collect()
}

#[test]
fn only_the_clock_reads_the_wall_clock() {
    let found = found_outside("SystemTime::now", &["clock"]);
    assert!(
        found.is_empty(),
        "SystemTime::now outside clock.rs: {found:?}"
    );
}

#[test]
fn only_the_ledger_speaks_sql() {
    for driver in ["rusqlite", "sqlx"] {
        let found = found_outside(driver, &["ledger"]);
        assert!(found.is_empty(), "{driver} outside src/ledger: {found:?}");
    }
}

/// SQLite is spoken through rusqlite alone and PostgreSQL through sqlx
/// alone: one driver, one kind of error and one set of connection settings
/// per database.
#[test]
fn each_database_has_one_driver() {
    for (backend, other_driver) in [("sqlite", "sqlx::"), ("postgres", "rusqlite")] {
        let found: Vec<String> = sources()
            .into_iter()
            .filter(|(_, path, code)| {
                path.components().any(|c| c.as_os_str() == backend) && code.contains(other_driver)
            })
            .map(|(_, path, _)| path.display().to_string())
            .collect();
        assert!(
            found.is_empty(),
            "{other_driver} in the {backend} backend: {found:?}"
        );
    }
}

/// One voice: only `output` writes to stdout or stderr (the binary's
/// `main`, which starts logging, is not a module).
#[test]
fn only_the_output_prints() {
    for word in [
        "println!",
        "eprintln!",
        "print!(",
        "eprint!(",
        "io::stdout",
        "io::stderr",
        "dbg!(",
    ] {
        let found = found_outside(word, &["output"]);
        assert!(found.is_empty(), "{word} outside src/output: {found:?}");
    }
}

/// Commands say how they ended (`Exit::Done`, `Exit::Attention`, …);
/// which number that is, and ending the process, belong to error.rs.
#[test]
fn no_command_picks_an_exit_code() {
    for word in ["process::exit", "ExitCode"] {
        let found = found_outside(word, &["error"]);
        assert!(found.is_empty(), "{word} outside error.rs: {found:?}");
    }
    let numbered: Vec<String> = sources()
        .into_iter()
        .filter(|(module, _, code)| module == "cmd" && code.contains(".code()"))
        .map(|(_, path, _)| path.display().to_string())
        .collect();
    assert!(
        numbered.is_empty(),
        "a command numbers its exit: {numbered:?}"
    );
}

/// Only `nxlink` knows the vendor's JSON: its wire shapes are private to
/// it, and no other module reads or writes a vendor field by name (the
/// sandbox, a stand-in for the vendor, keeps shapes of its own).
#[test]
fn only_the_vendor_module_knows_the_vendors_fields() {
    let found = found_outside("nxlink::wire", &["nxlink"]);
    assert!(found.is_empty(), "nxlink's wire types used in {found:?}");
    for field in [
        "callList",
        "orderID",
        "orderId",
        "userPhone",
        "agentGroupNo",
        "taskName",
        "strategyName",
        "dispatchType",
        "startupType",
        "callId",
        "startTime",
        "answerTime",
        "endTime",
        "callDuration",
        "ringDuration",
        "tenantId",
        "reqId",
        "accessKey",
        "bizType",
        "msg",
    ] {
        let literal = format!("\"{field}\"");
        let found = found_outside(&literal, &["nxlink", "sandbox"]);
        assert!(
            found.is_empty(),
            "the vendor's field {literal} in {found:?}"
        );
    }
}

/// Which database a ledger is on is the ledger's own business: no other
/// module picks a backend apart.
#[test]
fn no_module_outside_the_ledger_names_a_backend() {
    for word in [
        "Ledger::Sqlite",
        "Ledger::Postgres",
        "DbError::",
        "ledger::sqlite",
        "ledger::postgres",
    ] {
        let found = found_outside(word, &["ledger"]);
        assert!(found.is_empty(), "{word} outside src/ledger: {found:?}");
    }
}

/// lib.rs's codemap names every module, and every layer holds a module
/// that exists.
#[test]
fn the_codemap_and_the_layers_name_every_module() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
        .expect("lib.rs");
    let modules: Vec<&str> = lib
        .lines()
        .filter_map(|line| {
            line.trim_start_matches("pub ")
                .strip_prefix("mod ")?
                .strip_suffix(';')
        })
        .collect();
    for module in &modules {
        assert!(
            lib.contains(&format!("- `{module}`")) || lib.contains(&format!("- [`{module}`]")),
            "lib.rs's codemap does not name {module}"
        );
        layer_of(module);
    }
    for module in LAYERS.iter().flat_map(|layer| layer.iter()) {
        assert!(
            modules.contains(module),
            "LAYERS names {module}, which is no module"
        );
    }
}

#[test]
fn the_import_reader_sees_grouped_and_plain_imports() {
    let named =
        named_modules("use crate::a::B;\nuse crate::{c::{D, E}, f, g::H};\nlet x = crate::i::j();");
    let expected: BTreeSet<String> = ["a", "c", "f", "g", "i"].map(String::from).into();
    assert_eq!(named, expected);
}
