//! accrue's build. `zig build` installs zig-out/bin/accrue; `zig build test` builds and runs every
//! test; `zig build bench` runs the benchmarks; `zig build run -- ARGS` runs the binary;
//! `zig build asan` and `zig build valgrind` run the suite under those tools.
//! Options: -Dsystem-malloc=true links glibc malloc instead of jemalloc (for valgrind runs).
const std = @import("std");

/// The C sources of each module, one list per folder. runtime/main.c is the executable's own.
const sandbox_sources = [_][]const u8{
    "sandbox/sandbox.c",
    "sandbox/alloc.c",
    "sandbox/watchdog.c",
    "sandbox/stdlib.c",
    "sandbox/metaguard.c",
    "sandbox/api.c",
    "sandbox/bounded_string.c",
    "sandbox/bounded_table.c",
    "sandbox/json.c",
};
const meters_sources = [_][]const u8{
    "meters/eth/keccak.c",
    "meters/eth/keccak_x4.c",
    "meters/eth/hex.c",
    "meters/eth/uint256.c",
    "meters/eth/keys.c",
    "meters/eth/eip712.c",
    "meters/eth/merkle.c",
};
const registry_sources = [_][]const u8{
};
const runtime_sources = [_][]const u8{
    "runtime/cli_run.c",
    "runtime/test_provider.c",
    "runtime/cli_eth.c",
};

/// One executable per file under tests/, each a test of one module.
const unit_tests = [_][]const u8{
    "sandbox",
    "bounded",
    "corpus",
    "json",
    "keccak",
    "keys",
    "eip712",
    "merkle",
    "eth_crosscheck",
};
const benches = [_][]const u8{
    "sandbox",
    "eth",
};

const system_libs = [_][]const u8{ "lua5.4", "libwebsockets", "sqlite3", "libsecp256k1", "jansson", "nettle", "pthread" };

const c_flags = [_][]const u8{
    "-std=c11",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wno-unused-parameter",
    "-D_GNU_SOURCE",
};

pub fn build(b: *std.Build) void {
    const target = b.standardTargetOptions(.{});
    const optimize = b.standardOptimizeOption(.{});
    const system_malloc = b.option(bool, "system-malloc", "Use glibc malloc instead of jemalloc (valgrind runs)") orelse false;

    const core_mod = newModule(b, target, optimize, system_malloc);
    core_mod.addCSourceFiles(.{ .files = &sandbox_sources, .flags = &c_flags });
    core_mod.addCSourceFiles(.{ .files = &meters_sources, .flags = &c_flags });
    core_mod.addCSourceFiles(.{ .files = &registry_sources, .flags = &c_flags });
    core_mod.addCSourceFiles(.{ .files = &runtime_sources, .flags = &c_flags });
    const core = b.addLibrary(.{ .name = "accrue-core", .linkage = .static, .root_module = core_mod });

    const exe_mod = newModule(b, target, optimize, system_malloc);
    exe_mod.addCSourceFiles(.{ .files = &.{"runtime/main.c"}, .flags = &c_flags });
    exe_mod.linkLibrary(core);
    const exe = b.addExecutable(.{ .name = "accrue", .root_module = exe_mod });
    b.installArtifact(exe);

    const run_cmd = b.addRunArtifact(exe);
    run_cmd.step.dependOn(b.getInstallStep());
    run_cmd.addPassthruArgs();
    b.step("run", "Run accrue with the arguments after --").dependOn(&run_cmd.step);

    // `zig build test`: tests/run.sh runs every test binary and prints the closing
    // "N passed, N failed" line. The first argument is the accrue binary under test.
    const test_step = b.step("test", "Build and run all tests");
    const run_tests = b.addSystemCommand(&.{ "bash", "tests/run.sh" });
    run_tests.setCwd(b.path("."));
    run_tests.has_side_effects = true;
    run_tests.addArtifactArg(exe);
    for (unit_tests) |name| {
        const t = testExecutable(b, target, optimize, system_malloc, core, "test_", name);
        run_tests.addArtifactArg(t);
    }
    test_step.dependOn(&run_tests.step);

    // The whole suite under the sanitizer and under valgrind: scripts, since Zig cannot build with
    // ASan and valgrind needs a build of its own (see the scripts' headers).
    const asan = b.addSystemCommand(&.{ "bash", "tools/asan.sh" });
    asan.setCwd(b.path("."));
    asan.has_side_effects = true;
    b.step("asan", "Run every test built with AddressSanitizer + UBSan (gcc)").dependOn(&asan.step);
    const valgrind = b.addSystemCommand(&.{ "bash", "tools/valgrind.sh" });
    valgrind.setCwd(b.path("."));
    valgrind.has_side_effects = true;
    b.step("valgrind", "Run every test, and every corpus script, under valgrind memcheck").dependOn(&valgrind.step);

    const bench_step = b.step("bench", "Run the benchmarks (build with -Doptimize=ReleaseFast)");
    for (benches) |name| {
        const t = testExecutable(b, target, optimize, system_malloc, core, "bench_", name);
        const run = b.addRunArtifact(t);
        run.has_side_effects = true;
        run.setCwd(b.path("."));
        run.addArtifactArg(exe);
        bench_step.dependOn(&run.step);
    }
}

fn newModule(b: *std.Build, target: std.Build.ResolvedTarget, optimize: std.builtin.OptimizeMode, system_malloc: bool) *std.Build.Module {
    const mod = b.createModule(.{ .target = target, .optimize = optimize, .link_libc = true });
    mod.addIncludePath(b.path("."));
    for (system_libs) |lib| mod.linkSystemLibrary(lib, .{});
    if (system_malloc) {
        mod.addCMacro("ACCRUE_SYSTEM_MALLOC", "1");
    } else {
        mod.linkSystemLibrary("jemalloc", .{});
    }
    return mod;
}

fn testExecutable(b: *std.Build, target: std.Build.ResolvedTarget, optimize: std.builtin.OptimizeMode, system_malloc: bool, core: *std.Build.Step.Compile, comptime prefix: []const u8, name: []const u8) *std.Build.Step.Compile {
    const mod = newModule(b, target, optimize, system_malloc);
    const dir = if (std.mem.eql(u8, prefix, "bench_")) "tests/bench/" else "tests/";
    mod.addCSourceFiles(.{ .files = &.{b.fmt("{s}{s}{s}.c", .{ dir, prefix, name })}, .flags = &c_flags });
    mod.linkLibrary(core);
    return b.addExecutable(.{ .name = b.fmt("{s}{s}", .{ prefix, name }), .root_module = mod });
}
