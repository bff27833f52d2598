{
  description = "wtenv: per-worktree TCP ports, proven free, exported to your shell";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      cargoToml = builtins.fromTOML (builtins.readFile ./Cargo.toml);

      wtenvFor = pkgs:
        let
          lib = pkgs.lib;
          root = toString ./.;
          # Only what `cargo build` reads. shell-hooks/ is embedded with
          # include_str!: without it the build breaks.
          keep = [ "Cargo.toml" "Cargo.lock" "src" "shell-hooks" "tests" ];
          wanted = path: _type:
            let rel = lib.removePrefix (root + "/") (toString path);
            in builtins.any (k: rel == k || lib.hasPrefix (k + "/") rel) keep;
        in
        pkgs.rustPlatform.buildRustPackage {
          pname = cargoToml.package.name;
          version = cargoToml.package.version;
          src = lib.cleanSourceWith { src = ./.; filter = wanted; name = "wtenv-source"; };
          cargoLock.lockFile = ./Cargo.lock;
          # The suite drives real shells, direnv, nix and sockets, which the
          # build sandbox does not have: run it with scripts/test.
          doCheck = false;
          meta = {
            description = cargoToml.package.description;
            mainProgram = "wtenv";
            license = with lib.licenses; [ mit asl20 ];
          };
        };
    in
    {
      packages = forAllSystems (pkgs: { default = wtenvFor pkgs; wtenv = wtenvFor pkgs; });

      apps = forAllSystems (pkgs: {
        default = {
          type = "app";
          program = "${self.packages.${pkgs.stdenv.hostPlatform.system}.default}/bin/wtenv";
        };
      });

      overlays.default = final: _prev: { wtenv = wtenvFor final; };

      # To work on wtenv: the toolchain and every tool the tests drive.
      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          inputsFrom = [ self.packages.${pkgs.stdenv.hostPlatform.system}.default ];
          packages = with pkgs; [
            cargo rustc clippy rustfmt cargo-nextest rust-analyzer
            direnv zsh fish shellcheck hyperfine tmux python3 git
          ];
        };
      });

      # `wtenv.lib.shellHook { package = wtenv.packages.${system}.default; }`
      # returns the shellHook for a consumer's devShell (see nix/lib.nix).
      lib = import ./nix/lib.nix;
    };
}
