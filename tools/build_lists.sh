# build_lists.sh: sourced by the tool scripts; reads the source and test lists from build.zig, the
# one place they are kept, so the gcc builds below cannot drift from the Zig build.
zig_list() { # zig_list NAME: the strings in build.zig's `const NAME = [_][]const u8{ ... };`
  sed -n "/^const $1 = \[_\]\[\]const u8{/,/^};/p" build.zig | grep -o '"[^"]*"' | tr -d '"'
}
core_sources() { for l in sandbox_sources meters_sources registry_sources runtime_sources; do zig_list "$l"; done; }
