//! accrue's build. `zig build` installs zig-out/bin/accrue; `zig build test` builds and runs every
//! test; `zig build bench` runs the benchmarks (-Dbench=NAME[,NAME] only those); `zig build run -- ARGS` runs the binary;
//! `zig build asan`, `zig build valgrind` and `zig build tsan` run the suite under those tools.
//! Options: -Dsystem-malloc=true links glibc malloc instead of jemalloc (for valgrind runs).
//!
//! Each module (a folder of ../shared/ARCHITECTURE.md's map) is a static library of its own. It
//! compiles against a header tree made for it alone: its own headers plus the public headers of
//! the modules it declares as dependencies (and theirs), at their repository paths. A header of
//! any other module is simply not there, so an include in the wrong direction fails to build.
//! System libraries are linked per module too: only the sandbox sees Lua's headers, only the
//! store modules see SQLite's.
const std = @import("std");

const Module = struct {
    name: []const u8,
    /// C sources (repository paths).
    sources: []const []const u8,
    /// Headers other modules may include.
    public: []const []const u8,
    /// Headers only this module (and its tests) may include.
    private: []const []const u8 = &.{},
    /// Modules this one includes and links, by name.
    deps: []const []const u8 = &.{},
    /// pkg-config names of the system libraries it uses.
    system_libs: []const []const u8 = &.{},
    /// pkg-config names of the system libraries it links statically (their .a from the -dev
    /// package): liblua5.4, because a C function of ours calling Lua's API (lua_geti, lua_seti...)
    /// through the shared library ran 10-16% slower than the same source compiled inside
    /// liblua (measured on Lua's own table.unpack, here); statically linked, the two are equal.
    static_libs: []const []const u8 = &.{},
    /// Links jemalloc (unless -Dsystem-malloc=true).
    jemalloc: bool = false,
};

// The source lists are also read by tools/build_lists.sh (for the gcc-built asan/tsan runs):
// keep each as a `const NAME_sources = [_][]const u8{ ... };` of its own.
const base_sources = [_][]const u8{
    "runtime/base/status.c",
    "runtime/base/buf.c",
    "runtime/base/file.c",
};
const eth_sources = [_][]const u8{
    "meters/eth/keccak.c",
    "meters/eth/keccak_x4.c",
    "meters/eth/hex.c",
    "meters/eth/uint256.c",
    "meters/eth/keys.c",
    "meters/eth/eip712.c",
    "meters/eth/merkle.c",
};
const sandbox_sources = [_][]const u8{
    "sandbox/sandbox.c",
    "sandbox/alloc.c",
    "sandbox/region.c",
    "sandbox/watchdog.c",
    "sandbox/stdlib.c",
    "sandbox/metaguard.c",
    "sandbox/api.c",
    "sandbox/bounded_string.c",
    "sandbox/bounded_table.c",
    "sandbox/json.c",
};
const ledger_sources = [_][]const u8{
    "meters/ledger/id.c",
    "meters/ledger/ledger.c",
    "meters/ledger/check.c",
    "meters/ledger/store_sqlite.c",
};
const span_sources = [_][]const u8{
    "registry/span/tokenize.c",
    "registry/span/vocab.c",
    "registry/span/sais.c",
    "registry/span/corpus.c",
    "registry/span/index.c",
    "registry/span/attribute.c",
    "registry/span/persist.c",
};
const registry_sources = [_][]const u8{
    "registry/store.c",
    "registry/schema.c",
    "registry/names.c",
    "registry/accounts.c",
    "registry/datanets.c",
    "registry/models.c",
    "registry/manifest.c",
    "registry/agents.c",
    "registry/spans.c",
};
const meters_sources = [_][]const u8{
    "meters/split.c",
    "meters/event.c",
    "meters/meter.c",
    "meters/usage.c",
};
const factory_sources = [_][]const u8{
    "registry/factory/model.c",
    "registry/factory/generate.c",
    "registry/factory/answer.c",
    "registry/factory/request.c",
    "registry/factory/build.c",
};
/// Files built into the binary (tools/embed.c makes them C arrays): the demo registry.
const demo_files = [_][]const u8{
    "scripts/demo/orchard.jsonl",
    "scripts/demo.lua",
    "scripts/demo/orchard-guide.json",
    "scripts/demo/orchard-sources.lua",
    "scripts/demo/orchard-sources.json",
    "scripts/models/extract.lua",
};
const settle_sources = [_][]const u8{
    "meters/settle/batch.c",
    "meters/settle/verify.c",
    "meters/settle/cut.c",
};
const runtime_sources = [_][]const u8{
    "runtime/cli_run.c",
    "runtime/metered.c",
    "runtime/luamodel.c",
    "runtime/cli_meters.c",
    "runtime/test_provider.c",
    "runtime/cli_eth.c",
    "runtime/cli_serve.c",
    "runtime/cli_chat.c",
    "runtime/server/server.c",
    "runtime/server/pool.c",
    "runtime/server/map.c",
    "runtime/server/text.c",
    "runtime/server/http.c",
    "runtime/server/api.c",
    "runtime/server/reports.c",
    "runtime/server/batches.c",
    "runtime/server/openapi.c",
    "runtime/server/openai.c",
    "runtime/server/session.c",
    "runtime/server/framelog.c",
    "runtime/server/cframe.c",
    "runtime/server/wsconn.c",
    "runtime/server/upstream.c",
    "runtime/server/settle.c",
    "runtime/server/backend.c",
    "runtime/server/metrics.c",
    "runtime/server/outbound.c",
    "runtime/server/http1.c",
    "runtime/server/keepalive.c",
    "runtime/cli_util.c",
    "runtime/cli_registry.c",
    "runtime/cli_agents.c",
    "runtime/agents.c",
    "runtime/demo.c",
    "runtime/provider.c",
    "runtime/cli_settle.c",
};

const modules = [_]Module{
    .{
        .name = "base",
        .sources = &base_sources,
        .public = &.{ "runtime/base/status.h", "runtime/base/invariant.h", "runtime/base/buf.h", "runtime/base/file.h", "runtime/base/sort.h", "runtime/base/prefetch.h" },
    },
    .{
        .name = "eth",
        .sources = &eth_sources,
        .public = &.{ "meters/eth/keccak.h", "meters/eth/hex.h", "meters/eth/uint256.h", "meters/eth/keys.h", "meters/eth/eip712.h", "meters/eth/merkle.h" },
        .deps = &.{"base"},
        .system_libs = &.{ "nettle", "libsecp256k1", "jansson", "pthread" },
    },
    .{
        .name = "sandbox",
        .sources = &sandbox_sources,
        .public = &.{ "sandbox/sandbox.h", "sandbox/json.h" },
        .private = &.{ "sandbox/internal.h", "sandbox/region.h" },
        .deps = &.{"base"},
        .system_libs = &.{"pthread"},
        .static_libs = &.{"lua5.4"},
        .jemalloc = true,
    },
    .{
        .name = "ledger",
        .sources = &ledger_sources,
        .public = &.{"meters/ledger/ledger.h"},
        .private = &.{ "meters/ledger/internal.h", "meters/ledger/store.h" },
        .deps = &.{"base"},
        .system_libs = &.{ "sqlite3", "pthread" },
    },
    .{
        .name = "span",
        .sources = &span_sources,
        .public = &.{"registry/span/span.h"},
        .private = &.{"registry/span/span_internal.h"},
        .deps = &.{"base"},
        .system_libs = &.{"jansson"},
    },
    .{
        .name = "registry",
        .sources = &registry_sources,
        .public = &.{ "registry/registry.h", "registry/spans.h" },
        .private = &.{ "registry/store.h", "registry/manifest.h" },
        .deps = &.{ "base", "eth", "span" },
        .system_libs = &.{ "sqlite3", "jansson", "pthread" },
    },
    .{
        .name = "meters",
        .sources = &meters_sources,
        .public = &.{"meters/meters.h"},
        .private = &.{"meters/internal.h"},
        .deps = &.{ "base", "ledger" },
        .system_libs = &.{"m"},
    },
    .{
        .name = "factory",
        .sources = &factory_sources,
        .public = &.{"registry/factory/factory.h"},
        .private = &.{"registry/factory/factory_internal.h"},
        .deps = &.{ "base", "eth", "span", "registry" },
        .system_libs = &.{ "jansson", "pthread", "m" },
    },
    .{
        .name = "settle",
        .sources = &settle_sources,
        .public = &.{"meters/settle/settle.h"},
        .private = &.{"meters/settle/internal.h"},
        .deps = &.{ "base", "eth", "ledger" },
        .system_libs = &.{ "jansson", "pthread" },
    },
    .{
        .name = "runtime",
        .sources = &runtime_sources,
        .public = &.{},
        .private = &.{ "runtime/cli.h", "runtime/test_provider.h", "runtime/server/server.h", "runtime/server/internal.h", "runtime/server/session.h", "runtime/server/outbound.h", "runtime/server/http1.h", "runtime/server/keepalive.h", "runtime/metered.h", "runtime/luamodel.h", "runtime/cli_util.h", "runtime/agents.h", "runtime/demo.h", "runtime/embedded.h", "runtime/provider.h" },
        .deps = &.{ "base", "eth", "sandbox", "registry", "ledger", "meters", "span", "factory", "settle" },
        .system_libs = &.{ "libwebsockets", "libuv", "jansson", "openssl" },
    },
};

/// One executable per tests/test_NAME.c, with the module it tests (it sees that module's private
/// headers too) and links.
const Test = struct { name: []const u8, module: []const u8 };
const unit_tests = [_]Test{
    .{ .name = "base", .module = "base" },
    .{ .name = "server", .module = "runtime" },
    .{ .name = "http1", .module = "runtime" },
    .{ .name = "cframe", .module = "runtime" },
    .{ .name = "framelog", .module = "runtime" },
    .{ .name = "sandbox", .module = "sandbox" },
    .{ .name = "bounded", .module = "sandbox" },
    .{ .name = "alloc", .module = "sandbox" },
    .{ .name = "corpus", .module = "sandbox" },
    .{ .name = "json", .module = "sandbox" },
    .{ .name = "keccak", .module = "eth" },
    .{ .name = "keys", .module = "eth" },
    .{ .name = "eip712", .module = "eth" },
    .{ .name = "merkle", .module = "eth" },
    .{ .name = "eth_crosscheck", .module = "eth" },
    .{ .name = "ledger", .module = "ledger" },
    .{ .name = "span", .module = "span" },
    .{ .name = "registry", .module = "registry" },
    .{ .name = "registry_cli", .module = "registry" },
    .{ .name = "settle_chain", .module = "settle" },
    .{ .name = "meters", .module = "meters" },
    .{ .name = "crash", .module = "meters" },
    .{ .name = "metered", .module = "runtime" },
    .{ .name = "meters_cli", .module = "runtime" },
    .{ .name = "factory", .module = "factory" },
    .{ .name = "spans", .module = "registry" },
    .{ .name = "settle", .module = "settle" },
};
const benches = [_]Test{
    .{ .name = "server", .module = "runtime" },
    .{ .name = "sandbox", .module = "sandbox" },
    .{ .name = "eth", .module = "eth" },
    .{ .name = "span", .module = "span" },
    .{ .name = "factory", .module = "factory" },
    .{ .name = "meters", .module = "runtime" },
    .{ .name = "settle", .module = "settle" },
    .{ .name = "registry", .module = "registry" },
};
const test_headers = [_][]const u8{ "tests/check.h", "tests/util.h", "tests/eth_test_util.h", "tests/registry_test_util.h", "tests/bench/synth_text.h" };

const c_flags = [_][]const u8{
    "-std=c11",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wno-unused-parameter",
    "-D_GNU_SOURCE",
};

const Ctx = struct {
    b: *std.Build,
    target: std.Build.ResolvedTarget,
    optimize: std.builtin.OptimizeMode,
    system_malloc: bool,
    libs: [modules.len]*std.Build.Step.Compile = undefined,
};

pub fn build(b: *std.Build) void {
    var ctx = Ctx{
        .b = b,
        .target = b.standardTargetOptions(.{}),
        .optimize = b.standardOptimizeOption(.{}),
        .system_malloc = b.option(bool, "system-malloc", "Use glibc malloc instead of jemalloc (valgrind runs)") orelse false,
    };
    // The demo registry's files, as C arrays compiled into the runtime library.
    const embed = b.addExecutable(.{ .name = "embed", .root_module = b.createModule(.{
        .target = b.graph.host,
        .optimize = .ReleaseSafe,
        .link_libc = true,
    }) });
    embed.root_module.addCSourceFile(.{ .file = b.path("tools/embed.c"), .flags = &c_flags });
    const gen = b.addRunArtifact(embed);
    const demo_c = gen.addOutputFileArg("demo_files.c");
    gen.addArg("rt_demo_files");
    for (demo_files) |f| gen.addPrefixedFileArg(b.fmt("{s}=", .{f}), b.path(f));

    for (modules, 0..) |m, i| {
        const mod = newModule(&ctx, m.name, null);
        mod.addCSourceFiles(.{ .files = m.sources, .flags = &c_flags });
        if (std.mem.eql(u8, m.name, "runtime")) mod.addCSourceFile(.{ .file = demo_c, .flags = &c_flags });
        ctx.libs[i] = b.addLibrary(.{ .name = b.fmt("accrue-{s}", .{m.name}), .linkage = .static, .root_module = mod });
    }

    const exe_mod = newModule(&ctx, "runtime", null);
    exe_mod.addCSourceFiles(.{ .files = &.{"runtime/main.c"}, .flags = &c_flags });
    linkClosure(&ctx, exe_mod, "runtime");
    const exe = b.addExecutable(.{ .name = "accrue", .root_module = exe_mod });
    exe.pie = true; // no fixed code addresses for a script's tostring(function) to show
    b.installArtifact(exe);
    // The web page's files, found by `accrue serve` beside the binary (../share/accrue/web).
    b.installDirectory(.{ .source_dir = b.path("runtime/web"), .install_dir = .prefix, .install_subdir = "share/accrue/web" });

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
    for (unit_tests) |t| run_tests.addArtifactArg(testExecutable(&ctx, t, "tests/test_", "test_"));
    test_step.dependOn(&run_tests.step);

    // The whole suite under the sanitizers and under valgrind: scripts, since Zig cannot build with
    // ASan or TSan and valgrind needs a build of its own (see the scripts' headers).
    const tool_steps = [_][3][]const u8{
        .{ "asan", "tools/sanitize.sh asan", "Run every test built with AddressSanitizer + UBSan (gcc)" },
        .{ "tsan", "tools/sanitize.sh tsan", "Run every test built with ThreadSanitizer (gcc)" },
        .{ "valgrind", "tools/valgrind.sh", "Run every test, and every corpus script, under valgrind memcheck" },
    };
    for (tool_steps) |s| {
        var words = std.mem.splitScalar(u8, s[1], ' ');
        const cmd = b.addSystemCommand(&.{"bash"});
        while (words.next()) |w| cmd.addArg(w);
        cmd.setCwd(b.path("."));
        cmd.has_side_effects = true;
        b.step(s[0], s[2]).dependOn(&cmd.step);
    }

    const bench_step = b.step("bench", "Run the benchmarks (build with -Doptimize=ReleaseFast)");
    const bench_only = b.option([]const u8, "bench", "Run only these benchmarks: NAME[,NAME...] (tests/bench/bench_NAME.c)");
    for (benches) |t| {
        if (bench_only) |only| {
            var names = std.mem.splitScalar(u8, only, ',');
            const wanted = while (names.next()) |n| {
                if (std.mem.eql(u8, n, t.name)) break true;
            } else false;
            if (!wanted) continue;
        }
        const run = b.addRunArtifact(testExecutable(&ctx, t, "tests/bench/bench_", "bench_"));
        run.has_side_effects = true;
        run.setCwd(b.path("."));
        run.addArtifactArg(exe);
        bench_step.dependOn(&run.step);
        // `zig build bench-NAME` runs one of them.
        b.step(b.fmt("bench-{s}", .{t.name}), b.fmt("Run tests/bench/bench_{s}.c only", .{t.name})).dependOn(&run.step);
    }
}

fn moduleIndex(name: []const u8) usize {
    for (modules, 0..) |m, i| if (std.mem.eql(u8, m.name, name)) return i;
    @panic("build.zig: unknown module name");
}

/// Marks `name` and every module it depends on, directly or not.
fn closure(name: []const u8, seen: *[modules.len]bool) void {
    const i = moduleIndex(name);
    if (seen[i]) return;
    seen[i] = true;
    for (modules[i].deps) |d| closure(d, seen);
}

/// A C module compiled for `owner`: it sees owner's headers (all of them), the public headers of
/// everything owner depends on, and (for tests) the test helpers; it links the libraries of all of
/// them and their system libraries. A test (test_name set) sees tests/'s helpers too.
fn newModule(ctx: *Ctx, owner: []const u8, test_name: ?[]const u8) *std.Build.Module {
    const b = ctx.b;
    const mod = b.createModule(.{ .target = ctx.target, .optimize = ctx.optimize, .link_libc = true });
    if (ctx.optimize == .debug) mod.addCMacro("ACCRUE_DEBUG", "1");
    if (ctx.system_malloc) mod.addCMacro("ACCRUE_SYSTEM_MALLOC", "1");

    var seen: [modules.len]bool = @splat(false);
    closure(owner, &seen);
    const tree = b.addWriteFiles();
    const own = moduleIndex(owner);
    var jemalloc = false;
    for (modules, 0..) |m, i| {
        if (!seen[i]) continue;
        for (m.public) |h| _ = tree.addCopyFile(b.path(h), h);
        if (i == own) for (m.private) |h| {
            _ = tree.addCopyFile(b.path(h), h);
        };
        for (m.system_libs) |l| mod.linkSystemLibrary(l, .{});
        for (m.static_libs) |l| mod.linkSystemLibrary(l, .{ .preferred_link_mode = .static });
        jemalloc = jemalloc or m.jemalloc;
    }
    if (test_name != null) for (test_headers) |h| {
        _ = tree.addCopyFile(b.path(h), h);
    };
    mod.addIncludePath(tree.getDirectory());
    if (jemalloc and !ctx.system_malloc) mod.linkSystemLibrary("jemalloc", .{});
    return mod;
}

/// Links the libraries of owner's closure into an executable's module (a test, a bench, accrue).
fn linkClosure(ctx: *Ctx, mod: *std.Build.Module, owner: []const u8) void {
    var seen: [modules.len]bool = @splat(false);
    closure(owner, &seen);
    // Dependents before their dependencies, for the static linker.
    var i: usize = modules.len;
    while (i > 0) {
        i -= 1;
        if (seen[i]) mod.linkLibrary(ctx.libs[i]);
    }
}

fn testExecutable(ctx: *Ctx, t: Test, comptime path_prefix: []const u8, comptime name_prefix: []const u8) *std.Build.Step.Compile {
    const b = ctx.b;
    const mod = newModule(ctx, t.module, t.name);
    mod.addCSourceFiles(.{ .files = &.{b.fmt("{s}{s}.c", .{ path_prefix, t.name })}, .flags = &c_flags });
    linkClosure(ctx, mod, t.module);
    return b.addExecutable(.{ .name = b.fmt("{s}{s}", .{ name_prefix, t.name }), .root_module = mod });
}
