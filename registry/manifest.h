/*
 * manifest.h: an agent's manifest, parsed and checked, and its canonical text (manifest.c). Private
 * to registry/.
 */
#ifndef ACCRUE_REGISTRY_MANIFEST_H
#define ACCRUE_REGISTRY_MANIFEST_H

#include "registry/store.h"

/* Parses and checks a manifest into a (the manifest's fields; the rest zero) and, when canonical is
 * not NULL, its canonical text (malloc'd, the caller frees). Messages start "manifest: ". */
int registry_manifest_parse(const char *json, size_t len, registry_agent_t *a, char **canonical, acc_err *err);

/* keccak256(canonical || keccak256(script)). */
void registry_deploy_digest_canonical(const char *canonical, const char *script, size_t script_len, uint8_t digest[32]);

#endif
