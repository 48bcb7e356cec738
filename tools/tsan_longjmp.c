/*
 * tsan_longjmp.c: linked into the ThreadSanitizer build only (tools/sanitize.sh tsan).
 *
 * Debian's liblua is built with _FORTIFY_SOURCE, so a Lua error leaves a C function through
 * __longjmp_chk, which gcc 12's libtsan does not intercept (it does longjmp). TSan then never pops
 * the frames the jump skips, and its shadow stack grows with every error raised through one of our
 * (instrumented) C functions until it passes 65,536 frames and TSan aborts: the JSON fuzz test got
 * there in 6,000 documents, each pattern error in test_bounded costs more. Exported from the
 * executable, this definition is the one liblua binds to, and its longjmp is TSan's.
 */
#include <setjmp.h>

void __longjmp_chk(jmp_buf env, int val);
void __longjmp_chk(jmp_buf env, int val) {
    longjmp(env, val);
}
