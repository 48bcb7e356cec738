#!/usr/bin/env python3
"""eth_crosscheck.py: the independent side of the Ethereum cross-check (tests/test_eth_crosscheck.c).

Reads CASES.json written by the C test and writes ANSWERS.json with what eth-account and eth-abi
say about the same inputs:
  messages: EIP-191 digest, eth-account's signature, the address eth-account recovers from *our*
            signature;
  typed:    EIP-712 digest (encode_typed_data(full_message=...)), signature, recovered address;
  merkle:   root and every proof of OpenZeppelin's StandardMerkleTree for [address, uint256],
            computed here from OZ's published algorithm (src/core.ts, src/standard.ts) with eth_abi
            and eth_utils.keccak, independently of the C code.
Exit status 3 (and a message naming tools/setup.sh) when eth-account or eth-abi is missing.
"""
import json
import sys

try:
    from eth_abi import encode as abi_encode
    from eth_account import Account
    from eth_account.messages import encode_defunct, encode_typed_data
    from eth_utils import keccak, to_checksum_address
except ImportError as e:  # the C test turns this into a failure with the same hint
    sys.stderr.write(
        "eth_crosscheck.py: %s: install eth-account and eth-abi with "
        "`ACCRUE_SETUP_ETH=1 bash tools/setup.sh`\n" % e
    )
    sys.exit(3)


def hx(b):
    return "0x" + bytes(b).hex()


def sign_and_recover(signable, secret, our_signature):
    signed = Account.sign_message(signable, secret)
    recovered = Account.recover_message(signable, signature=bytes.fromhex(our_signature[2:]))
    return {
        "digest": hx(signed.message_hash),
        "signature": hx(signed.signature),
        "signer": Account.from_key(secret).address,
        "recovered": recovered,
    }


# ---- OpenZeppelin StandardMerkleTree, from its published algorithm ----

def oz_leaf(address, amount):
    return keccak(keccak(abi_encode(["address", "uint256"], [address, int(amount)])))


def oz_hash_pair(a, b):
    return keccak(b"".join(sorted([a, b])))


def oz_tree(values):
    hashed = [(oz_leaf(a, m), i) for i, (a, m) in enumerate(values)]
    hashed.sort(key=lambda e: e[0])  # stable, like JavaScript's Array.prototype.sort
    n = len(hashed)
    tree = [None] * (2 * n - 1)
    tree_index = [0] * n
    for k, (h, i) in enumerate(hashed):
        tree[len(tree) - 1 - k] = h
        tree_index[i] = len(tree) - 1 - k
    for i in range(len(tree) - 1 - n, -1, -1):
        tree[i] = oz_hash_pair(tree[2 * i + 1], tree[2 * i + 2])
    proofs = []
    for i in range(n):
        idx, proof = tree_index[i], []
        while idx > 0:
            sibling = idx + 1 if idx % 2 == 1 else idx - 1
            proof.append(tree[sibling])
            idx = (idx - 1) // 2
        # MerkleProof.processProof, as a self-check of this side
        h = oz_leaf(*values[i])
        for p in proof:
            h = oz_hash_pair(h, p)
        assert h == tree[0], "python OZ tree: proof %d does not verify" % i
        proofs.append([hx(p) for p in proof])
    return {"root": hx(tree[0]), "proofs": proofs}


def main():
    cases = json.load(open(sys.argv[1]))
    out = {"messages": [], "typed": [], "merkle": []}
    for c in cases["messages"]:
        msg = bytes.fromhex(c["message"][2:])
        out["messages"].append(sign_and_recover(encode_defunct(primitive=msg), c["secret"], c["our_signature"]))
    for c in cases["typed"]:
        try:
            signable = encode_typed_data(full_message=c["data"])
            out["typed"].append(sign_and_recover(signable, c["secret"], c["our_signature"]))
        except Exception as e:  # reported by the C side with the case
            out["typed"].append({"error": "%s: %s" % (type(e).__name__, e)})
    for c in cases["merkle"]:
        values = [(to_checksum_address(a), m) for a, m in c["values"]]
        out["merkle"].append(oz_tree(values))
    json.dump(out, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
