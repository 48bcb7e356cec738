/*
 * test_eip712.c: EIP-712 hashing: the EIP's Mail example (digest and signature), a document using
 * every type (values from eth-account), encodeType's dependency order, recursive types, and an
 * error naming the field for each kind of malformed input. Also `accrue sign/recover --typed-data`.
 */
#include "meters/eth/eip712.h"
#include "meters/eth/keccak.h"
#include "meters/eth/keys.h"
#include "runtime/base/file.h"
#include "tests/check.h"
#include "tests/eth_test_util.h"

/* A test vector's text (NUL-terminated, caller frees), or NULL with the reason on stderr. */
static char *read_file(const char *path, size_t *len) {
    char *text;
    acc_err err = {0};
    if (acc_read_file(path, 1 << 20, &text, len, &err) == ACC_OK) return text;
    fprintf(stderr, "%s\n", err.msg);
    return NULL;
}

/* A test vector parsed (freed with eip712_free), or NULL after a failed check. */
static eip712_doc *parse_vector(const char *path) {
    size_t len;
    char *json = read_file(path, &len);
    CHECK_MSG(json != NULL, "%s", path);
    if (!json) return NULL;
    eip712_doc *d = NULL;
    acc_err err = {0};
    CHECK_MSG(eip712_parse(json, len, &d, &err) == ACC_OK, "%s: %s", path, err.msg);
    free(json);
    return d;
}

static void mail_example_from_the_eip(void) {
    eip712_doc *d = parse_vector("tests/vectors/eip712_mail.json");
    if (!d) return;
    acc_err err = {0};
    uint8_t h[32], sig[65], cow[32];
    eip712_domain_separator(d, h);
    CHECK(test_hex_eq(h, 32, "0xf2cee375fa42b42143804025fc449deafd50cc031ca257e0b194a650a912090f"));
    eip712_message_hash(d, h);
    CHECK(test_hex_eq(h, 32, "0xc52c0ee5d84264471806290a3f2c4cecfc5490626bf912d01f240d7a274b371e"));
    char *enc = eip712_encode_type(d, "Mail");
    CHECK_STREQ(enc, "Mail(Person from,Person to,string contents)Person(string name,address wallet)");
    free(enc);
    eip712_digest(d, h);
    CHECK(test_hex_eq(h, 32, "0xbe609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"));
    /* the EIP signs with keccak256("cow"): v 28, r 0x4355c47d..., s 0x07299936... */
    keccak256("cow", 3, cow);
    eth_key *k;
    CHECK(eth_key_from_secret(&k, cow, &err) == 0);
    CHECK(eth_key_sign_digest(k, h, sig, &err) == 0);
    CHECK(test_hex_eq(sig, 65, "0x4355c47d63924e8a72e509b65029052eb6c299d53a04e167c5775fd466751c9d07299936d304c153f6443d"
                               "fa05f40ff007d72911b6f72307f996231605b915621c"));
    uint8_t addr[20];
    char text[43];
    CHECK(eth_recover(h, sig, addr, &err) == 0);
    eth_address_to_text(addr, text);
    CHECK_STREQ(text, "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826");
    eth_key_free(k);
    eip712_free(d);
}

static void every_type_matches_eth_account(void) {
    eip712_doc *d = parse_vector("tests/vectors/eip712_all_types.json");
    if (!d) return;
    uint8_t h[32];
    eip712_domain_separator(d, h);
    CHECK(test_hex_eq(h, 32, "0x15c072dcfee3ee70578fe75bfd0c0aff3210c78a34d9e4359a9676de58b9f75f"));
    eip712_message_hash(d, h);
    CHECK(test_hex_eq(h, 32, "0x1e02f1114ced028e133b9c1c0fefd8448f4fad5d1e02d77d7184c6eaadb4171d"));
    eip712_digest(d, h);
    CHECK(test_hex_eq(h, 32, "0x28e7ee130a81c2c03a0a9a2df6e7e9fe4ae15e1fc1cf7250d97f3a38c7e6a0f1"));
    char *enc = eip712_encode_type(d, "Order");
    CHECK_STREQ(enc, "Order(uint8 u8,uint64 u64,uint256 u256,int8 i8,int128 i128,int256 i256,bool ok,bytes1 b1,"
                     "bytes32 b32,bytes data,string note,Asset[] assets,uint16[2][] grid,Node tree,string[] names,"
                     "bytes[] empty)Asset(address token,uint256 amount,bytes4[2] tags)Node(string label,Node[] children)");
    free(enc);
    enc = eip712_encode_type(d, "Node");
    CHECK_STREQ(enc, "Node(string label,Node[] children)"); /* a recursive type lists itself once */
    free(enc);
    eip712_free(d);
}

static void encode_type_orders_dependencies_by_name(void) {
    const char *json =
        "{\"types\":{\"Transaction\":[{\"name\":\"from\",\"type\":\"Person\"},{\"name\":\"to\",\"type\":\"Person\"},"
        "{\"name\":\"tx\",\"type\":\"Asset\"}],\"Person\":[{\"name\":\"wallet\",\"type\":\"address\"},{\"name\":\"name\","
        "\"type\":\"string\"},{\"name\":\"z\",\"type\":\"Zed[2]\"}],\"Asset\":[{\"name\":\"token\",\"type\":\"address\"},"
        "{\"name\":\"amount\",\"type\":\"uint256\"}],\"Zed\":[{\"name\":\"a\",\"type\":\"Asset\"}]},"
        "\"primaryType\":\"Transaction\",\"domain\":{\"name\":\"x\"},\"message\":{}}";
    /* the message is empty on purpose: encodeType needs no values, the parse reports the first missing field */
    acc_err err = {0};
    eip712_doc *d;
    CHECK(eip712_parse(json, strlen(json), &d, &err) == ACC_EINVAL);
    CHECK_MSG(strstr(err.msg, "message.from") && strstr(err.msg, "missing field"), "%s", err.msg);
    const char *typed =
        "{\"types\":{\"Transaction\":[{\"name\":\"tx\",\"type\":\"Asset\"},{\"name\":\"p\",\"type\":\"Person[]\"}],"
        "\"Person\":[{\"name\":\"wallet\",\"type\":\"address\"},{\"name\":\"z\",\"type\":\"Zed[]\"}],"
        "\"Asset\":[{\"name\":\"amount\",\"type\":\"uint256\"}],\"Zed\":[{\"name\":\"a\",\"type\":\"Asset\"}]},"
        "\"primaryType\":\"Transaction\",\"domain\":{\"name\":\"x\"},\"message\":{\"tx\":{\"amount\":1},\"p\":[]}}";
    CHECK_MSG(eip712_parse(typed, strlen(typed), &d, &err) == 0, "%s", err.msg);
    char *enc = d ? eip712_encode_type(d, "Transaction") : NULL;
    CHECK_STREQ(enc, "Transaction(Asset tx,Person[] p)Asset(uint256 amount)Person(address wallet,Zed[] z)Zed(Asset a)");
    free(enc);
    eip712_free(d);
}

/* Each malformed document is refused with a message that names the place. */
static void malformed_inputs_name_the_field(void) {
    static const struct { const char *types, *message, *want; } cases[] = {
        {"\"M\":[{\"name\":\"a\",\"type\":\"uint7\"}]", "{\"a\":1}", "unknown type 'uint7'"},
        {"\"M\":[{\"name\":\"a\",\"type\":\"Nope\"}]", "{\"a\":1}", "types.M.a: unknown type 'Nope'"},
        {"\"M\":[{\"name\":\"a\",\"type\":\"bytes33\"}]", "{\"a\":\"0x00\"}", "unknown type 'bytes33'"},
        {"\"M\":[{\"name\":\"a\",\"type\":\"uint256[0]\"}]", "{\"a\":[]}", "malformed array size"},
        {"\"M\":[{\"name\":\"a\",\"type\":\"uint256[\"}]", "{\"a\":[]}", "malformed"},
        {"\"M\":[{\"name\":\"a\",\"type\":\"uint8\"}]", "{\"a\":256}", "message.a: uint8 value is out of range"},
        {"\"M\":[{\"name\":\"a\",\"type\":\"uint8\"}]", "{\"a\":-1}", "message.a: uint8 value is negative"},
        {"\"M\":[{\"name\":\"a\",\"type\":\"int8\"}]", "{\"a\":128}", "message.a: int8 value is out of range"},
        {"\"M\":[{\"name\":\"a\",\"type\":\"int8\"}]", "{\"a\":\"-129\"}", "message.a: int8 value is out of range"},
        {"\"M\":[{\"name\":\"a\",\"type\":\"uint256\"}]",
         "{\"a\":\"115792089237316195423570985008687907853269984665640564039457584007913129639936\"}",
         "message.a: uint256 value is not an integer"},
        {"\"M\":[{\"name\":\"a\",\"type\":\"uint256\"}]", "{\"a\":1.5}", "message.a: uint256 value must be an integer"},
        {"\"M\":[{\"name\":\"a\",\"type\":\"uint256\"}]", "{\"a\":\"12x\"}", "message.a: uint256 value is not an integer"},
        {"\"M\":[{\"name\":\"a\",\"type\":\"bytes4\"}]", "{\"a\":\"0x010203\"}", "message.a: bytes4 value: expected 0x and 8 hex digits, got 6"},
        {"\"M\":[{\"name\":\"a\",\"type\":\"bytes\"}]", "{\"a\":\"0x123\"}", "message.a: bytes value: expected 0x and an even number of hex digits, got 3"},
        {"\"M\":[{\"name\":\"a\",\"type\":\"uint8[2]\"}]", "{\"a\":[1,2,3]}", "message.a: wrong length"},
        {"\"M\":[{\"name\":\"a\",\"type\":\"uint8[]\"}]", "{\"a\":[1,\"x\"]}", "message.a[1]: uint8 value is not an integer"},
        {"\"M\":[{\"name\":\"a\",\"type\":\"address\"}]", "{\"a\":\"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD\"}",
         "message.a: address 0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD has a wrong EIP-55 checksum"},
        {"\"M\":[{\"name\":\"a\",\"type\":\"bool\"}]", "{\"a\":\"true\"}", "message.a: bool value must be true or false"},
        {"\"M\":[{\"name\":\"a\",\"type\":\"string\"}]", "{\"a\":5}", "message.a: string value must be a JSON string"},
        {"\"M\":[{\"name\":\"p\",\"type\":\"P\"}],\"P\":[{\"name\":\"w\",\"type\":\"address\"}]", "{\"p\":{}}",
         "message.p.w: missing field of type address"},
        {"\"M\":[{\"name\":\"p\",\"type\":\"P[]\"}],\"P\":[{\"name\":\"w\",\"type\":\"address\"}]", "{\"p\":[{\"w\":1}]}",
         "message.p[0].w: address value must be"},
        {"\"M\":[{\"name\":\"a\",\"type\":\"uint8\"}]", "{\"a\":null}", "message.a: missing value"},
        {"\"M\":[{\"name\":\"m\",\"type\":\"M\"}]", "{}", "types.M.m: type M can never end"},
        {"\"M\":[{\"name\":\"m\",\"type\":\"M[2]\"}]", "{}", "type M can never end"},
        {"\"M\":[{\"name\":\"b\",\"type\":\"B\"}],\"B\":[{\"name\":\"m\",\"type\":\"M\"}]", "{}", "can never end"},
        {"\"M\":[{\"name\":\"a\",\"type\":\"uint8\"},{\"name\":\"a\",\"type\":\"uint8\"}]", "{\"a\":1}", "declared twice"},
        {"\"M\":[{\"name\":\"a b\",\"type\":\"uint8\"}]", "{}", "not an identifier"},
        {"\"M\":[{\"name\":\"a\"}]", "{}", "types.M[0]: a field is an object"},
        {"\"uint8\":[]", "{}", "types.uint8: 'uint8' is an atomic type"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char json[1024];
        acc_err err = {0};
        snprintf(json, sizeof json, "{\"types\":{%s},\"primaryType\":\"M\",\"domain\":{\"chainId\":1},\"message\":%s}",
                 cases[i].types, cases[i].message);
        uint8_t d[32];
        int rc = eip712_digest_json(json, strlen(json), d, &err);
        CHECK_MSG(rc == ACC_EINVAL && strstr(err.msg, cases[i].want) != NULL, "case %zu: rc %d, error \"%s\", want \"%s\"",
                  i, rc, err.msg, cases[i].want);
    }
    /* document-level errors */
    static const struct { const char *json, *want; } docs[] = {
        {"[1]", "typed data must be a JSON object"},
        {"{\"types\":{},\"primaryType\":\"M\",\"domain\":{}}", "primaryType: 'M' is not a struct"},
        {"{\"types\":{\"M\":[]},\"primaryType\":\"M\",\"domain\":{\"chain\":1},\"message\":{}}", "domain.chain: not an EIP712Domain field"},
        {"{\"types\":{\"M\":[]},\"primaryType\":\"M\",\"domain\":{}}", "message: missing"},
        {"{\"types\":{\"M\":[]},\"domain\":{},\"message\":{}}", "primaryType: missing"},
        {"{\"types\":", "invalid JSON"},
        {"{\"types\":{\"EIP712Domain\":[{\"name\":\"chainId\",\"type\":\"uint256\"}],\"M\":[]},\"primaryType\":\"M\","
         "\"domain\":{},\"message\":{}}", "domain.chainId: missing field"},
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        acc_err err = {0};
        uint8_t d[32];
        int rc = eip712_digest_json(docs[i].json, strlen(docs[i].json), d, &err);
        CHECK_MSG(rc == ACC_EINVAL && strstr(err.msg, docs[i].want) != NULL, "doc %zu: error \"%s\", want \"%s\"", i, err.msg,
                  docs[i].want);
    }
}

static void integer_edges_are_accepted(void) {
    static const struct { const char *type, *value; } ok[] = {
        {"int8", "-128"}, {"int8", "127"}, {"int8", "\"-0x80\""}, {"uint8", "\"0xff\""}, {"uint8", "\"0\""},
        {"int256", "\"-57896044618658097711785492504343953926634992332820282019728792003956564819968\""},
        {"int256", "\"57896044618658097711785492504343953926634992332820282019728792003956564819967\""},
        {"uint256", "\"0xffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\""},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char json[512];
        acc_err err = {0};
        snprintf(json, sizeof json,
                 "{\"types\":{\"M\":[{\"name\":\"a\",\"type\":\"%s\"}]},\"primaryType\":\"M\",\"domain\":{},\"message\":{\"a\":%s}}",
                 ok[i].type, ok[i].value);
        uint8_t d[32];
        CHECK_MSG(eip712_digest_json(json, strlen(json), d, &err) == 0, "%s %s: %s", ok[i].type, ok[i].value, err.msg);
    }
    static const struct { const char *type, *value; } bad[] = {
        {"int256", "\"-57896044618658097711785492504343953926634992332820282019728792003956564819969\""},
        {"int256", "\"57896044618658097711785492504343953926634992332820282019728792003956564819968\""},
        {"int16", "-32769"}, {"uint16", "65536"}, {"int8", "\"-0x81\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char json[512];
        acc_err err = {0};
        snprintf(json, sizeof json,
                 "{\"types\":{\"M\":[{\"name\":\"a\",\"type\":\"%s\"}]},\"primaryType\":\"M\",\"domain\":{},\"message\":{\"a\":%s}}",
                 bad[i].type, bad[i].value);
        uint8_t d[32];
        CHECK_MSG(eip712_digest_json(json, strlen(json), d, &err) == ACC_EINVAL, "%s %s accepted", bad[i].type,
                  bad[i].value);
    }
}

/* Changing any one value changes the digest. */
static void tampering_with_a_value_changes_the_digest(void) {
    size_t len;
    char *json = read_file("tests/vectors/eip712_mail.json", &len);
    acc_err err = {0};
    if (!json) {
        CHECK(0);
        return;
    }
    uint8_t base[32], d[32];
    CHECK(eip712_digest_json(json, len, base, &err) == 0);
    static const char *edits[][2] = {{"Hello, Bob!", "Hello, Bob?"}, {"\"Cow\"", "\"Cox\""}, {"\"chainId\":1", "\"chainId\":2"},
                                     {"0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB", "0xbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbc"},
                                     {"Ether Mail", "Ether Mall"}};
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        char *copy = strdup(json), *at = strstr(copy, edits[i][0]);
        CHECK(at != NULL);
        if (!at) {
            free(copy);
            continue;
        }
        memcpy(at, edits[i][1], strlen(edits[i][1]));
        CHECK_MSG(eip712_digest_json(copy, len, d, &err) == 0, "%s", err.msg);
        CHECK_MSG(memcmp(d, base, 32) != 0, "edit %zu did not change the digest", i);
        free(copy);
    }
    free(json);
}

/* U+0000 inside strings is hashed as a byte, as eth-account does (digest from eth-account). */
static void strings_may_hold_nul(void) {
    const char *json = "{\"types\":{\"M\":[{\"name\":\"s\",\"type\":\"string\"},{\"name\":\"t\",\"type\":\"string[]\"}]},"
                       "\"primaryType\":\"M\",\"domain\":{\"name\":\"a\\u0000b\"},\"message\":{\"s\":\"x\\u0000y\","
                       "\"t\":[\"\\u0000\",\"\"]}}";
    uint8_t d[32];
    acc_err err = {0};
    CHECK_MSG(eip712_digest_json(json, strlen(json), d, &err) == 0, "%s", err.msg);
    CHECK(test_hex_eq(d, 32, "0x9ce9b162691c5e7c7e1387dce3ded168b781d2a33cb3a820b8184a17c79aad04"));
}

static void cli_sign_and_recover_typed_data(void) {
    char cmd[1024], out[2048];
    const char *bin = test_accrue_bin();
    char dir[256];
    if (test_scratch_dir(dir, sizeof dir, "eip712") != 0) {
        CHECK(!"a scratch directory");
        return;
    }
    /* the EIP's key, keccak256("cow"), in a key file */
    uint8_t cow[32];
    char hex[67], key[300];
    keccak256("cow", 3, cow);
    hex_encode0x(cow, 32, hex);
    snprintf(key, sizeof key, "%s/cow.key", dir);
    snprintf(cmd, sizeof cmd, "umask 077 && printf '%%s\\n' %s > %s", hex, key);
    CHECK(test_run(cmd, out, sizeof out) == 0);
    snprintf(cmd, sizeof cmd, "%s sign --key %s --typed-data tests/vectors/eip712_mail.json --json", bin, key);
    CHECK(test_run(cmd, out, sizeof out) == 0);
    CHECK(strstr(out, "\"digest\":\"0xbe609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2\"") != NULL);
    CHECK(strstr(out, "\"signature\":\"0x4355c47d63924e8a72e509b65029052eb6c299d53a04e167c5775fd466751c9d07299936d304c153"
                      "f6443dfa05f40ff007d72911b6f72307f996231605b915621c\"") != NULL);
    CHECK(strstr(out, "\"signer\":\"0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826\"") != NULL);
    snprintf(cmd, sizeof cmd,
             "%s recover --typed-data tests/vectors/eip712_mail.json --signature 0x4355c47d63924e8a72e509b65029052eb6c29"
             "9d53a04e167c5775fd466751c9d07299936d304c153f6443dfa05f40ff007d72911b6f72307f996231605b915621c",
             bin);
    CHECK(test_run(cmd, out, sizeof out) == 0);
    test_chomp(out);
    CHECK_STREQ(out, "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826");
    /* a malformed document: exit 2 and the field named */
    snprintf(cmd, sizeof cmd, "sed 's/\"Cow\"/5/' tests/vectors/eip712_mail.json > %s/bad.json && %s sign --key %s --typed-data %s/bad.json 2>&1",
             dir, bin, key, dir);
    CHECK(test_run(cmd, out, sizeof out) == 2);
    CHECK_MSG(strstr(out, "message.from.name") != NULL, "%s", out);
    test_remove_dir(dir);
}

int main(int argc, char **argv) {
    check_args(argc, argv);
    RUN(mail_example_from_the_eip);
    RUN(every_type_matches_eth_account);
    RUN(encode_type_orders_dependencies_by_name);
    RUN(malformed_inputs_name_the_field);
    RUN(integer_edges_are_accepted);
    RUN(tampering_with_a_value_changes_the_digest);
    RUN(strings_may_hold_nul);
    RUN(cli_sign_and_recover_typed_data);
    return check_finish("eip712");
}
