/*
 * main.c: the accrue binary's entry point: picks the subcommand and hands it its arguments.
 */
#include <stdio.h>
#include <string.h>

#include "runtime/cli.h"

typedef struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} command_t;

static const command_t commands[] = {
    {"run", cli_run, "run an agent script once in a fresh sandbox"},
    {"chat", cli_chat, "talk to an agent of a running accrue serve"},
    {"serve", cli_serve, "serve the HTTP API, WebSocket sessions and the OpenAI-compatible endpoint"},
    {"keygen", cli_keygen, "create a secp256k1 key file and print its address"},
    {"address", cli_address, "print the address of a key file"},
    {"sign", cli_sign, "sign a message, EIP-712 typed data or a digest"},
    {"recover", cli_recover, "print the address that made a signature"},
    {"merkle", cli_merkle, "Merkle root, proof and verification of [address, amount] values"},
    {"account", cli_account, "accounts of users and apps, and their API keys"},
    {"dataset", cli_dataset, "datanets: create, import, contribute, review, query, list"},
    {"model", cli_model, "models: register, list (build: from a datanet)"},
    {"deploy", cli_deploy, "publish a signed version of an agent"},
    {"agents", cli_agents, "the marketplace: listed agents, searched and sorted"},
    {"agent", cli_agent, "one agent: details, versions, usage; unlist or list it"},
    {"usage", cli_usage, "metered calls and who was paid what for each, and why"},
    {"balance", cli_balance, "an address's or an account's balance: available, pending, accrued, settled"},
    {"ledger", cli_ledger, "the ledger: check its invariants"},
    {"settle", cli_settle, "cut, sign and book the next settlement batch"},
    {"batches", cli_batches, "list the settlement batches"},
    {"batch", cli_batch, "show one settlement batch (--json: the signed batch for Ethereum tools)"},
    {"proof", cli_proof, "the Merkle proof of a payee's entry in a batch"},
    {"verify", cli_verify, "check a batch file: entries, root, digest, signature, link, ledger"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: accrue COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n`accrue COMMAND --help` describes one command.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "accrue: unknown command '%s' (try accrue --help)\n", argv[1]);
    return 2;
}
