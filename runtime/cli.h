/*
 * cli.h: the subcommands of the accrue binary. Each takes the arguments after its own name
 * (argv[0] is the subcommand) and returns the process exit status: 0 ok, 1 when the work failed
 * (a script error or limit, a signature or proof that does not hold), 2 for a usage error.
 * Messages go to stderr, one line, naming the flag or file at fault.
 */
#ifndef ACCRUE_RUNTIME_CLI_H
#define ACCRUE_RUNTIME_CLI_H

int cli_run(int argc, char **argv);
int cli_serve(int argc, char **argv); /* runtime/cli_serve.c */
int cli_chat(int argc, char **argv);  /* runtime/cli_chat.c */
/* runtime/cli_eth.c: keys, signatures and Merkle trees */
int cli_keygen(int argc, char **argv);
int cli_address(int argc, char **argv);
int cli_sign(int argc, char **argv);
int cli_recover(int argc, char **argv);
int cli_merkle(int argc, char **argv);
/* runtime/cli_registry.c: accounts, datanets, models */
int cli_account(int argc, char **argv);
int cli_dataset(int argc, char **argv);
int cli_model(int argc, char **argv);
/* runtime/cli_agents.c: deploying agents and the marketplace */
int cli_deploy(int argc, char **argv);
int cli_agents(int argc, char **argv);
int cli_agent(int argc, char **argv);
/* runtime/cli_meters.c: the ledger and the meters */
int cli_ledger(int argc, char **argv);
int cli_balance(int argc, char **argv);
int cli_usage(int argc, char **argv);
int cli_account_topup(int argc, char **argv); /* accrue account topup (cli_account dispatches it) */
/* runtime/cli_settle.c: settlement batches */
int cli_settle(int argc, char **argv);
int cli_batches(int argc, char **argv);
int cli_batch(int argc, char **argv);
int cli_proof(int argc, char **argv);
int cli_verify(int argc, char **argv);

#endif
