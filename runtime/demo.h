/*
 * demo.h: the demo registry, seeded by `accrue run` (and later `accrue serve`) into a registry
 * that holds no datanet, model or agent yet, so the first command a newcomer types has something
 * to talk to.
 *
 * What it holds: the datanet demo/orchard (300 short notes on growing fruit, written for accrue,
 * from five contributors, each record signed by its contributor's demo key); the builtin model
 * demo/orchard-ngram, built from it by the model factory (registry/factory/factory.h); the http model
 * demo/orchard-chat (an OpenAI-compatible endpoint on 127.0.0.1:8081, serving demo/orchard-ngram,
 * lineage demo/orchard); the lua model demo/orchard-extract (scripts/models/extract.lua, an
 * extractive summary of the text it is given, lineage demo/orchard); the agents orchard-guide and orchard-sources (scripts/demo.lua and
 * scripts/demo/orchard-sources.lua), deployed with the demo author's key; and a user account
 * "demo". The files are built into the binary (runtime/embedded.h).
 *
 * The demo keys are derived from public strings (keccak256("accrue demo key: " WHO)): anyone can
 * sign as them. They exist to make the demo's signatures real; never send them money.
 */
#ifndef ACCRUE_RUNTIME_DEMO_H
#define ACCRUE_RUNTIME_DEMO_H

#include <stdbool.h>

#include "meters/eth/keys.h"
#include "registry/registry.h"

#define RT_DEMO_DATANET "demo/orchard"
#define RT_DEMO_ACCOUNT "demo"

/* A demo key: who is "owner", "author" or "contributor 1" .. "contributor 5". Freed with
 * eth_key_free; NULL when it cannot be made. */
eth_key *rt_demo_key(const char *who);

/* Seeds the demo registry when reg holds no datanet, model or agent (checked inside the seeding
 * transaction, so processes seeding one file at once seed it once); all of it or nothing. *seeded
 * (may be NULL) says whether it did; demo_key (may be NULL) gets the demo account's new API key
 * when it made the account. */
int rt_demo_seed(registry_t *reg, bool *seeded, char demo_key[REGISTRY_API_KEY_TEXT_SIZE], acc_err *err);

#endif
