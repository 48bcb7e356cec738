# build_lists.sh: sourced by the tool scripts; reads the source and test lists from build.zig, the
# one place they are kept, so the gcc builds below cannot drift from the Zig build.
zig_list() { # zig_list NAME: the strings in build.zig's `const NAME = [_][]const u8{ ... };`
  sed -n "/^const $1 = \[_\]\[\]const u8{/,/^};/p" build.zig | grep -o '"[^"]*"' | tr -d '"'
}
# Every library source: the union of build.zig's `const *_sources` lists.
core_sources() {
  for l in $(grep -oE '^const [a-z_]+_sources = \[_\]\[\]const u8\{' build.zig | awk '{print $2}'); do
    zig_list "$l"
  done
}
# The names of build.zig's `const NAME = [_]Test{ .{ .name = "x", ... }, ... };` (unit_tests, benches).
zig_tests() {
  sed -n "/^const $1 = \[_\]Test{/,/^};/p" build.zig | grep -oE '\.name = "[^"]*"' | cut -d'"' -f2
}
