{
  description = "Queue-based job ingestion service: Rust Lambda functions, CDK Terrain infrastructure, local emulator";

  # Locked in flake.lock. The `original` entries there must match these URLs
  # exactly (see README "Reproducible builds").
  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    crane.url = "github:ipetkov/crane";
    rust-overlay = {
      url = "github:oxalica/rust-overlay";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs = { self, nixpkgs, crane, rust-overlay }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems f;

      # The one versions file of both install paths (tests/build/test_flake.py
      # checks it against rust-toolchain.toml, tools/python-tools.lock and
      # cdktf/package-lock.json).
      versions = builtins.fromJSON (builtins.readFile ./tools/versions.json);

      # The functions, as in the justfile and docs/contract.md.
      functions = [ "authorizer" "job-processor" "batch-simulator" "job-status" "object-counter" ];

      # Lambda architecture -> Rust target and the nixpkgs cross C toolchain.
      # Static musl binaries: a binary linked against the Nix store's glibc
      # would ask for a /nix/store loader, which Lambda does not have.
      lambdaArchs = {
        arm64 = { target = "aarch64-unknown-linux-musl"; cross = "aarch64-multiplatform-musl"; };
        x86_64 = { target = "x86_64-unknown-linux-musl"; cross = "musl64"; };
      };

      perSystem = system:
        let
          pkgs = import nixpkgs {
            inherit system;
            overlays = [ rust-overlay.overlays.default ];
          };
          inherit (pkgs) lib;

          # --- versions: fail evaluation on drift -------------------------
          versionMatches = want: got: got == want || lib.hasPrefix (want + ".") got;
          pinned = name: pkg:
            let want = versions.fromNixpkgs.${name};
            in
            assert lib.assertMsg (versionMatches want pkg.version) ''
              tools/versions.json pins ${name} ${want}, but the locked nixpkgs has ${pkg.version}.
              Update tools/versions.json together with the non-Nix pins (README "Reproducible builds"),
              then run `just check-build`.'';
            pkg;

          nodejs = pinned "nodejs" pkgs.nodejs_22;
          opentofu = pinned "opentofu" pkgs.opentofu;
          cdktn-cli = pinned "cdktn-cli" pkgs.cdktn-cli;
          checkov = pinned "checkov" pkgs.checkov;
          python = pkgs.python3.withPackages (ps:
            let moto = pinned "moto" ps.moto;
            in [ moto ps.boto3 ps.pytest ps.requests ps.cryptography ps.schemathesis ]
              ++ (moto.optional-dependencies.server or [ ]));

          # --- Rust: the version comes from rust-toolchain.toml only -------
          rustToolchain = (pkgs.rust-bin.fromRustupToolchainFile ./rust-toolchain.toml).override {
            targets = [ "x86_64-unknown-linux-gnu" "aarch64-unknown-linux-gnu" ]
              ++ map (a: a.target) (builtins.attrValues lambdaArchs);
          };
          craneLib = (crane.mkLib pkgs).overrideToolchain (_: rustToolchain);

          # cargo-lambda and just at exactly the non-Nix pins, from crates.io:
          # the hash is crates.io's own sha256 of the .crate, and the
          # dependencies are vendored from the crate's Cargo.lock (copied
          # into tools/nix/) by their Cargo.lock checksums.
          fromCratesIo = name:
            let
              pin = versions.fromCratesIo.${name};
              lockFile = ./tools/nix + "/${name}-${pin.version}.Cargo.lock";
            in
            craneLib.buildPackage {
              pname = name;
              inherit (pin) version;
              src = pkgs.fetchurl {
                name = "${name}-${pin.version}.tar.gz";
                url = "https://static.crates.io/crates/${name}/${name}-${pin.version}.crate";
                inherit (pin) sha256;
              };
              cargoLock = lockFile;
              cargoVendorDir = craneLib.vendorCargoDeps { cargoLock = lockFile; };
              cargoArtifacts = null;
              doInstallCargoArtifacts = false;
              cargoExtraArgs = "--locked --bin ${name}";
              doCheck = false;
              strictDeps = true;
            };
          cargo-lambda-bin = fromCratesIo "cargo-lambda";
          # cargo-lambda cross-links with zig (the zig of the locked nixpkgs).
          cargo-lambda = pkgs.symlinkJoin {
            name = "cargo-lambda-${cargo-lambda-bin.version}";
            paths = [ cargo-lambda-bin ];
            nativeBuildInputs = [ pkgs.makeWrapper ];
            postBuild = ''
              wrapProgram $out/bin/cargo-lambda --prefix PATH : ${lib.makeBinPath [ pkgs.zig ]}
            '';
          };
          just = fromCratesIo "just";

          # --- sources -------------------------------------------------------
          # Everything tracked by git, minus build outputs and installed tools.
          src = lib.cleanSourceWith {
            src = lib.cleanSource ./.;
            filter = path: _type: !(builtins.elem (baseNameOf path) [
              "target" "node_modules" "cdktf.out" ".gen" ".tools" ".local" ".deploy" "result"
            ]);
          };
          common = {
            inherit src;
            pname = "jobs";
            version = "0.1.0";
            strictDeps = true;
            cargoExtraArgs = "--locked";
          };

          # --- host build: clippy and tests ---------------------------------
          hostDeps = craneLib.buildDepsOnly common;

          # --- Lambda builds: one per architecture --------------------------
          fnArgs = lib.concatMapStringsSep " " (f: "-p ${f}") functions;
          lambdaBuild = arch:
            let
              a = lambdaArchs.${arch};
              cc = pkgs.pkgsCross.${a.cross}.stdenv.cc;
              envTarget = lib.toUpper (builtins.replaceStrings [ "-" ] [ "_" ] a.target);
              ccTarget = builtins.replaceStrings [ "-" ] [ "_" ] a.target;
              args = common // {
                pname = "jobs-lambda-${arch}";
                CARGO_BUILD_TARGET = a.target;
                CARGO_BUILD_RUSTFLAGS = "-C target-feature=+crt-static";
                "CARGO_TARGET_${envTarget}_LINKER" = "${cc.targetPrefix}cc";
                "CC_${ccTarget}" = "${cc.targetPrefix}cc";
                "CXX_${ccTarget}" = "${cc.targetPrefix}c++";
                "AR_${ccTarget}" = "${cc.targetPrefix}ar";
                HOST_CC = "cc";
                depsBuildBuild = [ cc ];
                nativeBuildInputs = [ pkgs.cmake pkgs.perl ];
                cargoExtraArgs = "--locked ${fnArgs}";
                doCheck = false;
              };
              # Dependencies compile once per architecture; the functions reuse them.
              deps = craneLib.buildDepsOnly args;
            in
            craneLib.buildPackage (args // { cargoArtifacts = deps; });

          # One derivation per function: $out/bootstrap.zip, normalized by the
          # same script as `just build` (fixed mtime, mode, compression).
          zipOf = arch: bins: fn:
            pkgs.runCommand "${fn}-${arch}-bootstrap-zip"
              { nativeBuildInputs = [ pkgs.zip pkgs.python3 ]; } ''
              mkdir -p work $out
              install -m 0755 ${bins}/bin/${fn} work/bootstrap
              (cd work && zip -q -X $out/bootstrap.zip bootstrap)
              SOURCE_DATE_EPOCH=315532800 python3 ${./tools/normalize-zip.py} $out/bootstrap.zip
            '';
          zipsFor = arch:
            let bins = lambdaBuild arch;
            in lib.listToAttrs (map (fn: { name = "${fn}-${arch}"; value = zipOf arch bins fn; }) functions);
          zips = zipsFor "arm64" // zipsFor "x86_64";

          # All zips in the layout of target/lambda: <arch>/<function>/bootstrap.zip
          # (JOBS_LAMBDA_ZIP_DIR=result/arm64 for the stacks).
          allZips = pkgs.linkFarm "jobs-lambda-zips" (lib.concatMap
            (arch: map (fn: { name = "${arch}/${fn}"; path = zips."${fn}-${arch}"; }) functions)
            [ "arm64" "x86_64" ]);

          # node_modules from package-lock.json's integrity hashes (no npmDepsHash).
          nodeModules = pkgs.importNpmLock.buildNodeModules {
            npmRoot = ./cdktf;
            inherit nodejs;
          };
        in
        {
          packages = zips // {
            default = allZips;
            inherit cargo-lambda just;
          };

          checks = {
            clippy = craneLib.cargoClippy (common // {
              cargoArtifacts = hostDeps;
              cargoClippyExtraArgs = "--all-targets -- --deny warnings";
            });
            rustfmt = craneLib.cargoFmt { inherit src; pname = "jobs"; version = "0.1.0"; };
            nextest = craneLib.cargoNextest (common // {
              cargoArtifacts = hostDeps;
              nativeBuildInputs = [ python ];
            });
            zips = allZips;
            jest = pkgs.stdenv.mkDerivation {
              name = "jobs-cdktf-jest";
              inherit src;
              # python3 runs cdktf/scripts/checkov.py in security.test.ts.
              nativeBuildInputs = [ nodejs pkgs.python3 ];
              buildPhase = ''
                runHook preBuild
                ln -s ${nodeModules}/node_modules cdktf/node_modules
                cd cdktf
                export HOME=$TMPDIR CHECKPOINT_DISABLE=1
                npm test
                runHook postBuild
              '';
              installPhase = "touch $out";
            };
          };

          devShells.default = pkgs.mkShell {
            packages = [
              rustToolchain
              cargo-lambda
              pkgs.zig
              pkgs.cargo-nextest
              just
              nodejs
              cdktn-cli
              opentofu
              python
              checkov
              pkgs.git
              pkgs.zip
              pkgs.unzip
            ];
            CHECKPOINT_DISABLE = "1";
            # cdktf/node_modules comes from the Nix store (tools/install.sh
            # then has nothing to install); a real directory there is left alone.
            shellHook = ''
              if [ -f cdktf/package-lock.json ] && { [ ! -e cdktf/node_modules ] || [ -L cdktf/node_modules ]; }; then
                ln -sfn ${nodeModules}/node_modules cdktf/node_modules
              fi
            '';
          };
        };

      outputs = forAllSystems perSystem;
    in
    {
      packages = forAllSystems (s: outputs.${s}.packages);
      checks = forAllSystems (s: outputs.${s}.checks);
      devShells = forAllSystems (s: outputs.${s}.devShells);
    };
}
