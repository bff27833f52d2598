# wtenv's Nix helpers. Plain Nix, no nixpkgs: flake.nix exposes this as
# `lib`, and the tests evaluate it with no-input fixtures.
let
  # Single quotes for bash: nothing inside is special; a ' is closed,
  # escaped and reopened (the same rule as wtenv's own quoting).
  quote = s: "'" + builtins.replaceStrings [ "'" ] [ "'\\''" ] s + "'";
in
{
  # The shellHook for a consumer's devShell:
  #   mkShell { shellHook = wtenv.lib.shellHook { package = wtenv.packages.${system}.default; }; }
  # In a `nix develop` shell, the ports it allocates are held by that shell
  # and released once it is gone; under direnv (`use flake`) the worktree's
  # sticky reservation is used instead. Without `package` (or `exe`), the
  # `wtenv` on PATH is used.
  shellHook =
    { package ? null
    , exe ? (if package == null then "wtenv" else "${package}/bin/wtenv")
    }:
    ''eval "$(${quote exe} hook nix)"'';
}
