//! Which modules of a crate use which (`crate::…` and `super::…` paths in its source
//! files), and the cycles among them: files are meant to depend one way only (issue
//! 14). A folder's `mod.rs` and its files may use each other (the `mod.rs` is the
//! folder's table of contents and shared vocabulary), so edges between a module and
//! its own submodules are not counted. A path through a re-export of the crate root
//! (`crate::Engine`, from `pub use evaluate::Engine` in `lib.rs`) counts as a use of the
//! module it re-exports, so a cycle cannot hide behind the table of contents. Test
//! modules (`#[cfg(test)] mod tests`) are left out: tests may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every group of modules of the crate whose sources are under `src` that use each
/// other in a cycle, as the edges among them (`a -> b`); empty when the modules form
/// layers.
pub fn module_cycles(src: &Path) -> Vec<Vec<String>> {
    let modules = read_modules(src);
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    let exports = modules
        .get("")
        .map(|root| root_exports(root, &names))
        .unwrap_or_default();
    let edges: BTreeMap<String, BTreeSet<String>> = modules
        .iter()
        .map(|(module, text)| (module.clone(), uses(module, text, &names, &exports)))
        .collect();
    strongly_connected(&edges)
        .into_iter()
        .filter(|group| group.len() > 1)
        .map(|group| {
            let mut lines = Vec::new();
            for from in &group {
                for to in edges[from].intersection(&group) {
                    lines.push(format!("{from} -> {to}"));
                }
            }
            lines
        })
        .collect()
}

/// Module path (`attestors::entry`; `` for the crate root) → source text.
fn read_modules(src: &Path) -> BTreeMap<String, String> {
    let mut modules = BTreeMap::new();
    let mut pending = vec![src.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("source folder {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("folder entry").path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).expect("below src");
            let mut parts: Vec<String> = relative
                .with_extension("")
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if parts.len() == 1 && matches!(parts[0].as_str(), "lib" | "main")
                || parts.last().is_some_and(|p| p == "mod")
            {
                parts.pop();
            }
            if parts.first().is_some_and(|p| p == "bin") {
                continue; // binaries are crates of their own
            }
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            modules.insert(parts.join("::"), text);
        }
    }
    modules
}

/// The items the crate root re-exports (`pub use a::b::{C, D as E}`), by the name they
/// have at the root → the module they come from, among `names`.
fn root_exports(root: &str, names: &BTreeSet<String>) -> BTreeMap<String, String> {
    let code = without_tests_and_comments(root);
    let mut exports = BTreeMap::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("pub use ") {
        rest = &rest[at + "pub use ".len()..];
        let statement = rest.split(';').next().unwrap_or_default();
        let statement = statement.split_whitespace().collect::<Vec<_>>().join(" ");
        let (base, items) = match statement.split_once('{') {
            Some((base, items)) => (
                base.trim_end_matches("::").to_owned(),
                items
                    .trim_end_matches('}')
                    .split(',')
                    .map(str::trim)
                    .collect(),
            ),
            None => (String::new(), vec![statement.as_str()]),
        };
        for item in items.into_iter().filter(|i| !i.is_empty()) {
            let (path, name) = match item.split_once(" as ") {
                Some((path, alias)) => (path.trim(), alias.trim()),
                None => (item, item.rsplit("::").next().unwrap_or(item)),
            };
            let full = if base.is_empty() {
                path.to_owned()
            } else {
                format!("{base}::{path}")
            };
            let full = full.strip_prefix("crate::").unwrap_or(&full);
            if let Some(module) = longest_module(full, names).filter(|m| !m.is_empty()) {
                exports.insert(name.to_owned(), module);
            }
        }
    }
    exports
}

/// The modules `module` uses, among `names` (through `exports`, the crate root's
/// re-exports, too).
fn uses(
    module: &str,
    text: &str,
    names: &BTreeSet<String>,
    exports: &BTreeMap<String, String>,
) -> BTreeSet<String> {
    let code = without_tests_and_comments(text);
    let parent = module.rsplit_once("::").map_or("", |(p, _)| p);
    let mut found = BTreeSet::new();
    for (prefix, base) in [("crate::", ""), ("super::", parent)] {
        for path in paths_after(&code, prefix) {
            let full = if base.is_empty() {
                path
            } else {
                format!("{base}::{path}")
            };
            // Not a module's path: an item of the root, maybe re-exported from one.
            let target = longest_module(&full, names).or_else(|| {
                let first = full.split("::").find(|s| !s.is_empty())?;
                exports.get(first).cloned()
            });
            if let Some(target) = target {
                let related = target == module
                    || target.is_empty()
                    || module.starts_with(&format!("{target}::"))
                    || target.starts_with(&format!("{module}::"));
                if !related {
                    found.insert(target);
                }
            }
        }
    }
    found
}

fn without_tests_and_comments(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths written after `prefix` (`a::b::C`), a brace group counting as one path
/// per item (`prefix{a::B, c}` → `a::B`, `c`).
fn paths_after(code: &str, prefix: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        let preceded_by_ident = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
        rest = &rest[at + prefix.len()..];
        if preceded_by_ident {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // An item is its first word: `Thing as Alias` is a use of `Thing`.
            let first_word = |item: &str| item.split_whitespace().next().unwrap_or("").to_owned();
            let mut depth = 1;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 1 => break,
                    '}' => depth -= 1,
                    ',' if depth == 1 => paths.push(first_word(&std::mem::take(&mut item))),
                    c if depth == 1 => item.push(c),
                    _ => {}
                }
            }
            paths.push(first_word(&item));
        } else {
            let path: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            paths.push(path);
        }
    }
    paths
}

/// The longest module of `names` that `path` starts with.
fn longest_module(path: &str, names: &BTreeSet<String>) -> Option<String> {
    let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    (1..=segments.len())
        .rev()
        .map(|n| segments[..n].join("::"))
        .find(|candidate| names.contains(candidate))
}

/// Tarjan's strongly connected components.
fn strongly_connected(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        groups: Vec<BTreeSet<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, node: &'a str) {
            let n = self.index.len();
            self.index.insert(node, n);
            self.low.insert(node, n);
            self.stack.push(node);
            self.on_stack.insert(node);
            for next in self.edges.get(node).into_iter().flatten() {
                let next = next.as_str();
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node, low);
                } else if self.on_stack.contains(next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut group = BTreeSet::new();
                while let Some(member) = self.stack.pop() {
                    self.on_stack.remove(member);
                    group.insert(member.to_owned());
                    if member == node {
                        break;
                    }
                }
                self.groups.push(group);
            }
        }
    }
    let mut walk = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        groups: Vec::new(),
    };
    for node in edges.keys() {
        if !walk.index.contains_key(node.as_str()) {
            walk.visit(node);
        }
    }
    walk.groups
}
