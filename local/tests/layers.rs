//! The layers of the local target (the diagram at the top of
//! docs/local-target.md): every file under src/ is parsed, each module's
//! uses of the crate's other modules are collected (`use crate::...` trees,
//! `super::`/`self::` paths, paths in types and expressions, and paths
//! inside macro calls; not doc links), and:
//!
//! - no top-level module uses, directly or through others, one that uses it;
//! - each uses only modules of its own layer or of the layers below
//!   ([`LAYERS`], the diagram at the top of docs/local-target.md);
//! - every module under src/ has a layer, and the doc's diagram lists the
//!   same layers with the same modules.
//!
//! The same parse also holds every function under src/ to at most
//! [`MAX_FUNCTION_LINES`] lines (issue 16).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// The layers, bottom first: a module may use modules of its own layer and
/// of the layers below, never one above. `lib` is the crate root (lib.rs:
/// `crate::lock`), `main` the `jobs-local` binary (it uses the library as
/// `jobs_local::`). Mirrors the diagram at the top of docs/local-target.md.
const LAYERS: &[(&str, &[&str])] = &[
    ("base", &["lib", "httpx", "awserror", "process", "policy", "vtl", "schema", "package", "xml"]),
    ("model", &["stack", "model"]),
    ("provision", &["moto", "provision"]),
    ("Lambda platform", &["lambda", "iam", "intercept"]),
    ("service proxies", &["proxy", "faults"]),
    ("event sources", &["poller", "notifications", "gateway"]),
    ("control API", &["control", "footprint"]),
    ("run", &["run", "outputs", "daemon", "watch", "main"]),
];

/// One use of another module: where, and the path as written.
#[derive(Debug, Clone)]
struct Use {
    from: String,
    to: String,
    at: String,
    path: String,
}

/// Collects the cross-module uses of one file.
struct Collector<'a> {
    file: String,
    /// The module the visitor is in (`["model", "iam"]`; empty: the crate
    /// root; `["main"]`: the binary).
    module: Vec<String>,
    binary: bool,
    top_level: &'a BTreeSet<String>,
    uses: Vec<Use>,
}

impl Collector<'_> {
    fn from(&self) -> String {
        self.module.first().cloned().unwrap_or_else(|| "lib".into())
    }

    /// The top-level module a path names, if it is one of this crate's.
    fn target(&self, segs: &[String]) -> Option<String> {
        let item_of_root = |rest: &[String]| -> Option<String> {
            let first = rest.first()?;
            Some(if self.top_level.contains(first) { first.clone() } else { "lib".into() })
        };
        let first = segs.first()?.as_str();
        if self.binary {
            return if first == "jobs_local" { item_of_root(&segs[1..]) } else { None };
        }
        match first {
            "crate" => item_of_root(&segs[1..]),
            "super" | "self" => {
                let mut base = self.module.clone();
                let mut rest = segs;
                while let Some(s) = rest.first() {
                    match s.as_str() {
                        "super" => {
                            base.pop();
                        }
                        "self" => {}
                        _ => break,
                    }
                    rest = &rest[1..];
                }
                match base.first() {
                    Some(top) => Some(top.clone()),
                    None => item_of_root(rest),
                }
            }
            // A relative path: in the crate root it may name a module.
            _ if self.module.is_empty() && self.top_level.contains(first) => Some(first.to_string()),
            _ => None,
        }
    }

    fn record(&mut self, segs: &[String], line: usize) {
        let Some(to) = self.target(segs) else { return };
        let from = self.from();
        if to != from {
            let at = format!("{}:{line}", self.file);
            self.uses.push(Use { from, to, at, path: segs.join("::") });
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                prefix.push(n.ident.to_string());
                let line = n.ident.span().start().line;
                self.record(&prefix.clone(), line);
                prefix.pop();
            }
            syn::UseTree::Rename(r) => {
                prefix.push(r.ident.to_string());
                let line = r.ident.span().start().line;
                self.record(&prefix.clone(), line);
                prefix.pop();
            }
            syn::UseTree::Glob(g) => {
                let line = g.star_token.spans[0].start().line;
                self.record(&prefix.clone(), line);
            }
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }

    /// Paths in a macro's tokens (`assert!(crate::process::group_alive(..))`),
    /// which syn leaves unparsed.
    fn tokens(&mut self, tokens: TokenStream) {
        let list: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < list.len() {
            match &list[i] {
                TokenTree::Group(g) => self.tokens(g.stream()),
                TokenTree::Ident(id) if ["crate", "super", "self", "jobs_local"].contains(&id.to_string().as_str()) => {
                    let after_dollar = i > 0 && matches!(&list[i - 1], TokenTree::Punct(p) if p.as_char() == '$');
                    let mut segs = vec![id.to_string()];
                    let mut j = i + 1;
                    loop {
                        let colons = matches!((list.get(j), list.get(j + 1)),
                            (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b))) if a.as_char() == ':' && b.as_char() == ':');
                        match list.get(j + 2) {
                            Some(TokenTree::Ident(next)) if colons => {
                                segs.push(next.to_string());
                                j += 3;
                            }
                            _ => break,
                        }
                    }
                    if segs.len() > 1 && !after_dollar {
                        self.record(&segs, id.span().start().line);
                    }
                    i = j;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
    }
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        // `mod x;` declares a module: only an inline module's items are walked.
        if m.content.is_some() {
            self.module.push(m.ident.to_string());
            syn::visit::visit_item_mod(self, m);
            self.module.pop();
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &u.tree);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segs: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        let line = p.segments.first().map(|s| s.ident.span().start().line).unwrap_or(0);
        self.record(&segs, line);
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        syn::visit::visit_macro(self, m);
        self.tokens(m.tokens.clone());
    }
}

/// The module a file under src/ is (`iam/stack.rs` → `["iam", "stack"]`).
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().expect("a file name");
    let stem = last.strip_suffix(".rs").expect("a .rs file");
    if !(parts.is_empty() && stem == "lib") && stem != "mod" {
        parts.push(stem.to_string());
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable src dir") {
        let path = entry.expect("a dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn collect(rel: &Path, source: &str, top_level: &BTreeSet<String>) -> Vec<Use> {
    let file = syn::parse_file(source).unwrap_or_else(|e| panic!("{}: does not parse: {e}", rel.display()));
    let module = module_of(rel);
    let binary = module == ["main"];
    let mut c = Collector { file: rel.display().to_string(), module, binary, top_level, uses: Vec::new() };
    c.visit_file(&file);
    c.uses
}

/// Every top-level module of src/ (`lib` and `main` included) and every use
/// of one by another.
fn crate_uses() -> (BTreeSet<String>, Vec<Use>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let rels: Vec<PathBuf> = files.iter().map(|f| f.strip_prefix(&src).expect("under src").to_path_buf()).collect();
    let top_level: BTreeSet<String> =
        rels.iter().map(|r| module_of(r).first().cloned().unwrap_or_else(|| "lib".into())).collect();
    let mut uses = Vec::new();
    for (file, rel) in files.iter().zip(&rels) {
        let source = std::fs::read_to_string(file).expect("readable source");
        uses.extend(collect(rel, &source, &top_level));
    }
    (top_level, uses)
}

/// A cycle of `graph` as the path `a, b, ..., a`, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|n| n == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, done, path) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, graph, &mut done, &mut Vec::new()) {
            return Some(cycle);
        }
    }
    None
}

fn graph_of(uses: &[Use]) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for u in uses {
        graph.entry(u.from.clone()).or_default().insert(u.to.clone());
    }
    graph
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, modules)| modules.contains(&module))
}

#[test]
fn no_module_uses_one_that_uses_it() {
    let (_, uses) = crate_uses();
    if let Some(cycle) = find_cycle(&graph_of(&uses)) {
        let steps: Vec<String> = cycle
            .windows(2)
            .map(|w| {
                let u = uses.iter().find(|u| u.from == w[0] && u.to == w[1]).expect("an edge of the graph");
                format!("  {} uses {} ({}: {})", w[0], w[1], u.at, u.path)
            })
            .collect();
        panic!("import circle {}:\n{}", cycle.join(" → "), steps.join("\n"));
    }
}

#[test]
fn no_module_uses_one_of_a_layer_above_it() {
    let (_, uses) = crate_uses();
    let mut wrong = BTreeSet::new();
    for u in &uses {
        if let (Some(from), Some(to)) = (layer_of(&u.from), layer_of(&u.to))
            && to > from
        {
            wrong.insert(format!(
                "  {} ({}) uses {} ({}): {}: {}",
                u.from, LAYERS[from].0, u.to, LAYERS[to].0, u.at, u.path
            ));
        }
    }
    assert!(wrong.is_empty(), "uses of a layer above:\n{}", wrong.into_iter().collect::<Vec<_>>().join("\n"));
}

#[test]
fn every_module_has_a_layer() {
    let (top_level, _) = crate_uses();
    let listed: BTreeSet<String> = LAYERS.iter().flat_map(|(_, m)| m.iter().map(|s| s.to_string())).collect();
    let unplaced: Vec<&String> = top_level.difference(&listed).collect();
    assert!(unplaced.is_empty(), "modules of src/ in no layer (place them in LAYERS and the doc): {unplaced:?}");
    let gone: Vec<&String> = listed.difference(&top_level).collect();
    assert!(gone.is_empty(), "LAYERS names modules src/ does not have: {gone:?}");
    assert_eq!(listed.len(), LAYERS.iter().map(|(_, m)| m.len()).sum::<usize>(), "a module is in two layers");
}

/// The diagram: the first code block of docs/local-target.md, one line per
/// layer, `<layer name>  <module> · <module> ...`.
#[test]
fn the_docs_diagram_lists_these_layers() {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/local-target.md");
    let doc = std::fs::read_to_string(doc).expect("docs/local-target.md");
    let block = doc.split("```").nth(1).expect("a code block in docs/local-target.md");
    let mut found = BTreeMap::new();
    for line in block.lines() {
        let line = line.trim();
        for (name, _) in LAYERS {
            if let Some(rest) = line.strip_prefix(name)
                && rest.starts_with("  ")
            {
                let modules: BTreeSet<String> = rest
                    .split('·')
                    .map(|m| m.split('(').next().unwrap_or_default().trim().to_string())
                    .filter(|m| !m.is_empty())
                    .collect();
                found.insert(name.to_string(), modules);
            }
        }
    }
    let expected: BTreeMap<String, BTreeSet<String>> = LAYERS
        .iter()
        .map(|(name, modules)| (name.to_string(), modules.iter().map(|m| m.to_string()).collect()))
        .collect();
    assert_eq!(found, expected, "the diagram at the top of docs/local-target.md and LAYERS differ");
    let order: Vec<usize> = block
        .lines()
        .filter_map(|l| {
            LAYERS.iter().position(|(name, _)| l.trim().strip_prefix(name).is_some_and(|r| r.starts_with("  ")))
        })
        .collect();
    let top_first: Vec<usize> = (0..LAYERS.len()).rev().collect();
    assert_eq!(order, top_first, "the diagram lists the layers top first");
}

#[test]
fn the_cycle_finder_finds_cycles_and_only_cycles() {
    let graph = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
        }
        g
    };
    assert_eq!(find_cycle(&graph(&[("a", "b"), ("b", "c"), ("a", "c"), ("c", "d")])), None);
    assert_eq!(
        find_cycle(&graph(&[("a", "b"), ("b", "c"), ("c", "d"), ("d", "b")])),
        Some(vec!["b".to_string(), "c".into(), "d".into(), "b".into()])
    );
    assert_eq!(find_cycle(&graph(&[("x", "y"), ("y", "x")])), Some(vec!["x".to_string(), "y".into(), "x".into()]));
}

#[test]
fn the_collector_sees_use_trees_paths_and_macros() {
    let top_level: BTreeSet<String> =
        ["lib", "a", "b", "c", "d", "e", "f", "g", "h"].iter().map(|s| s.to_string()).collect();
    let source = r#"
        use crate::{a, b::{self, Thing}};
        use super::c::*;
        fn f(x: crate::d::Type) -> Vec<super::e::Other> {
            let _ = crate::lock(&m);
            assert!(crate::f::alive());
            format!("{}", self::inner::x());
            vec![<crate::g::G as Trait>::new()]
        }
        mod tests {
            use super::*;
            use super::super::super::h::Z;
        }
    "#;
    let uses = collect(Path::new("x/y.rs"), source, &top_level);
    let seen: BTreeSet<(String, String)> = uses.iter().map(|u| (u.from.clone(), u.to.clone())).collect();
    let expected: BTreeSet<(String, String)> =
        ["a", "b", "d", "lib", "f", "g", "h"].iter().map(|t| ("x".to_string(), t.to_string())).collect();
    assert_eq!(seen, expected, "{uses:#?}");
    // super:: from a file of the crate root names a module of the root.
    let uses = collect(Path::new("x.rs"), "use super::c::Y; fn f() { super::e::z() }", &top_level);
    let seen: BTreeSet<&str> = uses.iter().map(|u| u.to.as_str()).collect();
    assert_eq!(seen, BTreeSet::from(["c", "e"]));
    let uses = collect(Path::new("main.rs"), "use jobs_local::{a, b::B}; fn f() { crate::c::x() }", &top_level);
    let seen: BTreeSet<&str> = uses.iter().map(|u| u.to.as_str()).collect();
    assert_eq!(seen, BTreeSet::from(["a", "b"]), "the binary uses the library as jobs_local::");
}

/// One module (awserror) writes the emulated services' error answers: no
/// other code outside tests writes an S3 `<Error>` document, SQS's
/// `x-amzn-query-error` or a JSON `__type` error. The API gateway's own
/// answers (gateway/responses.rs, shaped by the stack's gateway responses)
/// are API Gateway's, not an emulated service's.
#[test]
fn aws_error_answers_are_shaped_in_one_module() {
    let mut files = Vec::new();
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    let mut writers = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (n, line) in code.lines().enumerate() {
            let writes = line.contains("<Error><Code>")
                || (line.contains("x-amzn-query-error") && line.contains("insert"))
                || (line.contains("\"__type\"") && line.contains("json!"));
            if writes && !file.ends_with("awserror.rs") {
                writers.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(writers.is_empty(), "AWS error answers shaped outside local/src/awserror.rs:\n{}", writers.join("\n"));
}

/// The longest a function may be, in lines from its `fn` to its closing
/// brace (issue 16): past this, split it into named steps.
const MAX_FUNCTION_LINES: usize = 80;

/// Every function with a body in one file: name, `fn` line and length.
struct FunctionLengths {
    found: Vec<(String, usize, usize)>,
}

impl FunctionLengths {
    fn record(&mut self, sig: &syn::Signature, body: &syn::Block) {
        let first = sig.fn_token.span.start().line;
        let last = body.brace_token.span.close().end().line;
        self.found.push((sig.ident.to_string(), first, last - first + 1));
    }
}

// syn's default visits walk into bodies, so nested functions (and those in
// inline modules, `#[cfg(test)] mod tests` among them) are measured too.
impl<'ast> Visit<'ast> for FunctionLengths {
    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        self.record(&f.sig, &f.block);
        syn::visit::visit_item_fn(self, f);
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        self.record(&f.sig, &f.block);
        syn::visit::visit_impl_item_fn(self, f);
    }

    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        if let Some(body) = &f.default {
            self.record(&f.sig, body);
        }
        syn::visit::visit_trait_item_fn(self, f);
    }
}

fn function_lengths(source: &str) -> Vec<(String, usize, usize)> {
    let file = syn::parse_file(source).expect("a file that parses");
    let mut lengths = FunctionLengths { found: Vec::new() };
    lengths.visit_file(&file);
    lengths.found
}

/// Test modules are held to the limit too: a test is read when it fails,
/// and a long one is as hard to follow as long production code.
#[test]
fn no_function_is_longer_than_80_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut long = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).expect("under src").display().to_string();
        let source = std::fs::read_to_string(file).expect("readable source");
        for (name, line, lines) in function_lengths(&source) {
            if lines > MAX_FUNCTION_LINES {
                long.push(format!("  {rel}:{line} {name} ({lines} lines)"));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FUNCTION_LINES} lines (split them into named steps):\n{}",
        long.join("\n")
    );
}

#[test]
fn function_lengths_count_from_fn_to_the_closing_brace() {
    let source = "fn a() {}\n\nimpl X {\n    pub fn b(\n        x: u8,\n    ) {\n        fn c() {\n        }\n    }\n}\n\
                  trait T {\n    fn d() {}\n    fn e();\n}\n";
    let found = function_lengths(source);
    let expected = [("a", 1, 1), ("b", 4, 6), ("c", 7, 2), ("d", 12, 1)];
    let expected: Vec<(String, usize, usize)> = expected.iter().map(|(n, l, c)| (n.to_string(), *l, *c)).collect();
    assert_eq!(found, expected);
}
