# The Rust workspace's source: what Cargo and the Rust tests read, nothing
# else. An edit of the README, docs/, cdktf/, tests/ or tools/ therefore
# changes no Rust derivation (the filtered tree is content-addressed).
#
# Paths are compared relative to the root (never by base name alone, so
# local/tests/fixtures/cdktf.out is kept while cdktf/ is not). Written with
# builtins only, so that tests/build can evaluate it offline with any Nix:
#   builtins.path { path = root; name = "jobs-rust-source"; filter = (import ./rust-source.nix).filter root; }
# which is exactly what the flake's lib.cleanSourceWith call does.
let
  # The workspace members' directories (Cargo.toml [workspace] members).
  crateDirs = [ "functions" "local" "cli" "bench/hello-runtime" ];
  # Workspace files outside the members: the manifest and lock, Cargo's
  # config (its [env] reaches build scripts) and rustfmt's (checks.rustfmt).
  rootFiles = [ "Cargo.toml" "Cargo.lock" ".cargo" ".cargo/config.toml" "rustfmt.toml" ];
  # Data the Rust code and tests read beside .rs files: each function's JSON
  # fixtures, jobs-local's stack fixture (a cdktf.out) and the moto
  # sitecustomize files that local/src/moto.rs embeds and moto-harness loads
  # (not their Python tests beside them).
  dataPatterns = [ "functions/[^/]+/fixtures/.+" "local/tests/fixtures/.+" "local/moto-python/sitecustomize\\.py" "local/moto-cognito/sitecustomize\\.py" ];
  # The job bodies the docs use, outside any member: jobs-core's tests embed
  # each one (functions/jobs-core/tests/examples.rs) so that none can rot.
  exampleDir = "examples";
  # Build outputs and caches that can sit inside a member directory of a
  # working tree (a path: flake copies untracked files too).
  skipNames = [ "target" "node_modules" "__pycache__" ];

  hasPrefix = prefix: s: builtins.substring 0 (builtins.stringLength prefix) s == prefix;
  hasSuffix = suffix: s:
    let n = builtins.stringLength s; k = builtins.stringLength suffix;
    in n >= k && builtins.substring (n - k) k s == suffix;
  any = f: builtins.foldl' (acc: x: acc || f x) false;
  under = rel: dir: rel == dir || hasPrefix (dir + "/") rel;
  aboveOf = rel: dir: hasPrefix (rel + "/") dir;
in
{
  inherit crateDirs rootFiles dataPatterns exampleDir;

  # root -> path -> type -> bool
  filter = root:
    let rootString = toString root;
    in path: type:
      let
        rel = builtins.substring (builtins.stringLength rootString + 1) (-1) (toString path);
        base = baseNameOf rel;
        inCrate = any (under rel) crateDirs;
      in
      if builtins.elem rel rootFiles then true
      else if builtins.elem base skipNames then false
      else if type == "directory" then inCrate || any (aboveOf rel) crateDirs || rel == exampleDir
      else if under rel exampleDir then hasSuffix ".json" base
      else if !inCrate then false
      else hasSuffix ".rs" base || hasSuffix ".toml" base || base == "Cargo.lock"
        || any (p: builtins.match p rel != null) dataPatterns;
}
