{
  description = "Queue-based job ingestion service: Rust Lambda functions, CDK Terrain infrastructure, local emulator";

  # Locked in flake.lock. The `original` entries there must match these URLs
  # exactly (see docs/reproducible-builds.md).
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
      functions = [ "authorizer" "job-processor" "batch-simulator" "job-status" "job-commands" "object-counter" "webhook-sender" ];

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
              Update tools/versions.json together with the non-Nix pins (docs/reproducible-builds.md),
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
          just = fromCratesIo "just";

          # zig at exactly the non-Nix pin (PyPI ziglang, which cargo-lambda
          # links the arm64 zips of `just build` with): the wheel PyPI serves,
          # checked against PyPI's sha256. Its zig is a static binary, next to
          # its lib/ as zig expects.
          zig =
            let
              pin = versions.fromPyPI.ziglang;
              wheel = pin.wheels.${system};
            in
            assert lib.assertMsg (lib.hasPrefix "ziglang-${pin.version}-" (baseNameOf wheel.url))
              "tools/versions.json: the ziglang wheel for ${system} is not version ${pin.version}";
            pkgs.stdenvNoCC.mkDerivation {
              pname = "zig";
              inherit (pin) version;
              src = pkgs.fetchurl { inherit (wheel) url sha256; };
              nativeBuildInputs = [ pkgs.unzip ];
              unpackPhase = "unzip -q $src 'ziglang/*'";
              installPhase = ''
                mkdir -p $out/lib $out/bin
                cp -r ziglang $out/lib/zig
                rm $out/lib/zig/*.py
                ln -s ../lib/zig/zig $out/bin/zig
              '';
              dontStrip = true;
              dontPatchELF = true;
              doInstallCheck = true;
              installCheckPhase = ''
                export HOME=$TMPDIR
                [ "$($out/bin/zig version)" = ${lib.escapeShellArg pin.version} ] \
                  || { echo "zig from the ziglang ${pin.version} wheel reports $($out/bin/zig version)" >&2; exit 1; }
              '';
            };

          cargo-lambda-bin = fromCratesIo "cargo-lambda";
          # cargo-lambda cross-links with the pinned zig, as on the non-Nix path.
          cargo-lambda = pkgs.symlinkJoin {
            name = "cargo-lambda-${cargo-lambda-bin.version}";
            paths = [ cargo-lambda-bin ];
            nativeBuildInputs = [ pkgs.makeWrapper ];
            postBuild = ''
              wrapProgram $out/bin/cargo-lambda --prefix PATH : ${lib.makeBinPath [ zig ]}
            '';
          };

          # --- sources -------------------------------------------------------
          # Rust: the workspace's Cargo and Rust files and the test data they
          # read (nix/rust-source.nix), so an edit elsewhere changes no Rust
          # derivation.
          rustSrc = lib.cleanSourceWith {
            src = ./.;
            name = "jobs-rust-source";
            filter = (import ./nix/rust-source.nix).filter ./.;
          };
          # The jest synth tests read cdktf/ and a few files outside it
          # (docs/contract.md, the justfile, jobs-aws's metric names): the
          # repository without build outputs and installed tools.
          repoSrc = lib.cleanSourceWith {
            src = lib.cleanSource ./.;
            name = "jobs-source";
            filter = path: _type:
              let rel = lib.removePrefix (toString ./. + "/") (toString path);
              in !(builtins.elem rel [
                "target" ".tools" ".local" ".deploy" "result"
                "cdktf/node_modules" "cdktf/cdktf.out" "cdktf/.gen"
              ] || lib.hasPrefix "result-" rel);
          };
          common = {
            src = rustSrc;
            pname = "jobs";
            version = "0.1.0";
            strictDeps = true;
            cargoExtraArgs = "--locked";
          };

          # --- host build: clippy and tests ---------------------------------
          hostDeps = craneLib.buildDepsOnly common;

          # --- Lambda builds: shared dependencies per architecture, one
          # buildPackage per function ----------------------------------------
          fnArgs = lib.concatMapStringsSep " " (f: "-p ${f}") functions;
          lambdaArgs = arch:
            let
              a = lambdaArchs.${arch};
              cc = pkgs.pkgsCross.${a.cross}.stdenv.cc;
              envTarget = lib.toUpper (builtins.replaceStrings [ "-" ] [ "_" ] a.target);
              ccTarget = builtins.replaceStrings [ "-" ] [ "_" ] a.target;
            in
            common // {
              CARGO_BUILD_TARGET = a.target;
              CARGO_BUILD_RUSTFLAGS = "-C target-feature=+crt-static";
              "CARGO_TARGET_${envTarget}_LINKER" = "${cc.targetPrefix}cc";
              "CC_${ccTarget}" = "${cc.targetPrefix}cc";
              "CXX_${ccTarget}" = "${cc.targetPrefix}c++";
              "AR_${ccTarget}" = "${cc.targetPrefix}ar";
              HOST_CC = "cc";
              depsBuildBuild = [ cc ];
              nativeBuildInputs = [ pkgs.cmake pkgs.perl ];
              doCheck = false;
            };
          # The five functions' dependencies, compiled once per architecture.
          lambdaDeps = lib.genAttrs (builtins.attrNames lambdaArchs) (arch:
            craneLib.buildDepsOnly (lambdaArgs arch // {
              pname = "jobs-lambda-deps-${arch}";
              cargoExtraArgs = "--locked ${fnArgs}";
              # Only the release build is reused: no `cargo check` pass.
              cargoCheckCommand = "true";
            }));
          # One function's binary: its own crate (and the workspace crates it
          # uses) over the shared dependencies.
          lambdaBinary = arch: fn:
            craneLib.buildPackage (lambdaArgs arch // {
              pname = "${fn}-${arch}";
              cargoArtifacts = lambdaDeps.${arch};
              cargoExtraArgs = "--locked -p ${fn}";
            });

          # One derivation per function and architecture: $out/bootstrap.zip,
          # normalized by the same script as `just build` (fixed mtime, mode,
          # compression).
          zipOf = arch: fn:
            let bin = lambdaBinary arch fn;
            in pkgs.runCommand "${fn}-${arch}-bootstrap-zip"
              { nativeBuildInputs = [ pkgs.zip pkgs.python3 ]; } ''
              mkdir -p work $out
              install -m 0755 ${bin}/bin/${fn} work/bootstrap
              (cd work && zip -q -X $out/bootstrap.zip bootstrap)
              SOURCE_DATE_EPOCH=315532800 python3 ${./tools/normalize-zip.py} $out/bootstrap.zip
            '';
          zipsFor = arch: lib.listToAttrs (map (fn: { name = "${fn}-${arch}"; value = zipOf arch fn; }) functions);
          zips = zipsFor "arm64" // zipsFor "x86_64";

          # All zips in the layout of target/lambda: <arch>/<function>/bootstrap.zip
          # (JOBS_LAMBDA_ZIP_DIR=result/arm64 for the stacks).
          allZips = pkgs.linkFarm "jobs-lambda-zips" (lib.concatMap
            (arch: map (fn: { name = "${arch}/${fn}"; path = zips."${fn}-${arch}"; }) functions)
            [ "arm64" "x86_64" ]);

          # --- node packages: from package-lock.json's names, versions and
          # integrity hashes; no registry is named here ---------------------
          # npm writes the lock without download addresses (`resolved`), so
          # each package is fetched by `npm pack <name>@<version>` from npm's
          # own registry (its default, or NPM_CONFIG_REGISTRY in the Nix
          # daemon's environment) into a fixed-output derivation whose hash
          # IS the lock's integrity: Nix keeps the file only if its sha512 is
          # the one the lock records.
          npmLock = lib.importJSON ./cdktf/package-lock.json;
          npmName = lockPath: lib.last (lib.splitString "node_modules/" lockPath);
          npmTarball = name: version: integrity:
            pkgs.stdenvNoCC.mkDerivation {
              name = "${builtins.replaceStrings [ "@" "/" ] [ "" "-" ] name}-${version}.tgz";
              nativeBuildInputs = [ nodejs ];
              outputHash = integrity;
              outputHashMode = "flat";
              impureEnvVars = lib.fetchers.proxyImpureEnvVars ++ [ "NPM_CONFIG_REGISTRY" ];
              buildCommand = ''
                export HOME=$TMPDIR npm_config_cache=$TMPDIR/npm-cache
                mkdir $TMPDIR/pack
                npm pack --ignore-scripts --pack-destination $TMPDIR/pack ${lib.escapeShellArg "${name}@${version}"} >&2
                mv $TMPDIR/pack/*.tgz $out
              '';
            };
          npmTarballs = lib.listToAttrs (lib.mapAttrsToList
            (lockPath: e: {
              name = "${npmName lockPath}@${e.version}";
              value = npmTarball (npmName lockPath) e.version e.integrity;
            })
            (lib.filterAttrs (lockPath: e: lockPath != "" && e ? integrity) npmLock.packages));
          # The lock with each package's tarball as its `resolved`: `npm ci
          # --offline` then installs exactly the locked tree without a network.
          # (Bundled packages have no integrity: they come inside their parent.)
          npmLockOffline = npmLock // {
            packages = lib.mapAttrs
              (lockPath: e:
                if lockPath != "" && e ? integrity
                then e // { resolved = "file:${npmTarballs."${npmName lockPath}@${e.version}"}"; }
                else e)
              npmLock.packages;
          };
          nodeModules = pkgs.stdenvNoCC.mkDerivation {
            name = "jobs-cdktf-node-modules";
            nativeBuildInputs = [ nodejs ];
            packageJson = ./cdktf/package.json;
            packageLock = builtins.toJSON npmLockOffline;
            passAsFile = [ "packageLock" ];
            buildCommand = ''
              mkdir work && cd work
              cp $packageJson package.json
              cp $packageLockPath package-lock.json
              export HOME=$TMPDIR npm_config_cache=$TMPDIR/npm-cache
              npm ci --offline --ignore-scripts --no-audit --no-fund
              patchShebangs node_modules
              mkdir $out
              mv node_modules $out/
            '';
          };
        in
        {
          packages = zips // {
            default = allZips;
            inherit cargo-lambda just zig;
          };

          checks = {
            clippy = craneLib.cargoClippy (common // {
              cargoArtifacts = hostDeps;
              cargoClippyExtraArgs = "--all-targets -- --deny warnings";
            });
            rustfmt = craneLib.cargoFmt { src = rustSrc; pname = "jobs"; version = "0.1.0"; };
            # moto_server for the adapter, handler and jobs-local tests comes
            # from `python` (moto with its server extras); jobs-local's watch
            # test builds a throwaway function with cargo-lambda (and its zig),
            # which caches under HOME.
            nextest = craneLib.cargoNextest (common // {
              cargoArtifacts = hostDeps;
              nativeBuildInputs = [ python cargo-lambda ];
              preCheck = ''
                export HOME=$(mktemp -d)
              '';
            });
            zips = allZips;
            jest = pkgs.stdenv.mkDerivation {
              name = "jobs-cdktf-jest";
              src = repoSrc;
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
              zig
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
            # cdktf/node_modules comes from the Nix store, built from the
            # same lock (tools/install.sh then has nothing to install); a
            # real directory there is left alone.
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
