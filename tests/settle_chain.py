#!/usr/bin/env python3
"""settle_chain.py: the claim contract (meters/settle/contract/claim.vy) on a real EVM.

titanoboa runs the Vyper contract on py-evm in this process. Batches are made here, independently
of accrue's C code: signed with eth-account's EIP-712 (encode_typed_data), their trees built by
OpenZeppelin's StandardMerkleTree algorithm as tests/eth_crosscheck.py writes it.

    settle_chain.py contract
        every rule of the contract: posting in order, the signer, the link, the range, claims paid
        once and in full, every refusal with its reason, rotation, ownership, the surplus.
    settle_chain.py gas OUT.json
        the gas titanoboa reports per batch post and per claim (the benchmark's figures).
    settle_chain.py check BATCH.json [PROOF.json ...] ...
        accrue's batches and proofs checked with eth-account and OpenZeppelin's algorithm alone:
        the typed data's digest, the digest of the fields through typed data built here, the
        signer recovered, the root, every proof (processProof, and equal to OZ's getProof).
    settle_chain.py e2e PLAN.json
        the whole path through the accrue binary onto the chain: see run_plan().

Prints "ok NAME" or "FAIL NAME: why" per check and closes with "# settle_chain: N passed, N failed";
exit status 0 only when nothing failed, 3 when titanoboa, vyper or eth-account is missing.
"""
import json
import os
import sys
import traceback

try:
    import boa
    from eth_account import Account
    from eth_account.messages import encode_typed_data
    from eth_utils import keccak, to_checksum_address
except ImportError as e:
    sys.stderr.write(
        "settle_chain.py: %s: install titanoboa, vyper and eth-account with "
        "`ACCRUE_SETUP_ETH=1 bash tools/setup.sh`\n" % e
    )
    sys.exit(3)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from eth_crosscheck import oz_leaf, oz_tree  # noqa: E402  (OpenZeppelin's algorithm, written once)

CONTRACT = os.path.join(HERE, "..", "meters", "settle", "contract", "claim.vy")
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

BATCH_FIELDS = [
    ("sequence", "uint64"),
    ("prevHash", "bytes32"),
    ("firstTransfer", "uint64"),
    ("lastTransfer", "uint64"),
    ("entryCount", "uint64"),
    ("total", "uint256"),
    ("root", "bytes32"),
    ("cutTime", "uint64"),
]

passed = 0
failed = 0


def check(name, cond, why=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok", name)
    else:
        failed += 1
        print("FAIL %s: %s" % (name, why))
    sys.stdout.flush()


def refused(name, reason, fn):
    """fn() must revert with exactly `reason`."""
    try:
        with boa.reverts(reason):
            fn()
        check(name, True)
    except Exception as e:  # did not revert, or reverted for another reason
        check(name, False, "wanted a revert with %r: %s" % (reason, str(e).splitlines()[0][:300]))


def hx(b):
    return "0x" + bytes(b).hex()


def b32(text):
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)


# ---------------------------------------------------------------- batches made here

def typed_data(fields, chain_id, contract):
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Batch": [{"name": n, "type": t} for n, t in BATCH_FIELDS],
        },
        "primaryType": "Batch",
        "domain": {"name": "accrue settlement", "version": "1", "chainId": chain_id,
                   "verifyingContract": to_checksum_address(contract)},
        "message": {k: (hx(v) if isinstance(v, bytes) else v) for k, v in fields.items()},
    }


class Batch:
    """A batch signed by eth-account, its tree built by OZ's algorithm."""

    def __init__(self, key, chain_id, contract, sequence, prev_hash, first, last, entries, cut_time=1700000000,
                 total=None):
        self.entries = entries  # [(address, amount)]
        self.tree = oz_tree(entries)
        self.fields = {
            "sequence": sequence,
            "prevHash": prev_hash,
            "firstTransfer": first,
            "lastTransfer": last,
            "entryCount": len(entries),
            "total": sum(a for _, a in entries) if total is None else total,
            "root": b32(self.tree["root"]),
            "cutTime": cut_time,
        }
        signed = Account.sign_message(encode_typed_data(full_message=typed_data(self.fields, chain_id, contract)),
                                      key.key)
        self.digest = bytes(signed.message_hash)
        self.signature = bytes(signed.signature)

    def args(self, **override):
        f = dict(self.fields)
        f.update({k: v for k, v in override.items() if k != "signature"})
        return ([f[n] for n, _ in BATCH_FIELDS] + [override.get("signature", self.signature)])

    def proof(self, i):
        return [b32(p) for p in self.tree["proofs"][i]]


def fresh_env(chain_id=31337):
    boa.env.evm.patch.chain_id = chain_id
    return chain_id


def deploy(signer, wei_per_unit=1, last=(0, b"\0" * 32, 0)):
    return boa.load(CONTRACT, signer, wei_per_unit, last[0], last[1], last[2])


def random_entries(n, seed):
    import random
    rng = random.Random(seed)
    out = {}
    while len(out) < n:
        out[to_checksum_address(bytes(rng.getrandbits(8) for _ in range(20)))] = rng.randint(1, 10**9)
    return sorted(out.items(), key=lambda e: int(e[0], 16))


def logs_named(contract, name):
    return [e for e in contract.get_logs() if type(e).__name__ == name]


def gas_of(fn):
    boa.env.reset_gas_used()
    out = fn()
    return out, boa.env.get_gas_used()


# ---------------------------------------------------------------- the contract's rules

def contract_tests():
    chain_id = fresh_env()
    host = Account.create("accrue host")
    other = Account.create("someone else")
    owner = boa.env.eoa

    c = deploy(host.address, wei_per_unit=10**12)
    addr = c.address
    check("signer registered", c.signer() == host.address)
    check("owner is the deployer", c.owner() == owner)

    entries = random_entries(300, 1)
    b1 = Batch(host, chain_id, addr, 1, b"\0" * 32, 1, 5000, entries)

    # The contract's digest is eth-account's.
    check("digest equals eth-account's", c.batch_digest(*b1.args()[:-1]) == b1.digest,
          "%s != %s" % (hx(c.batch_digest(*b1.args()[:-1])), hx(b1.digest)))

    # Refusals before anything is posted.
    refused("claim of a never-posted batch", "accrue: no such batch",
            lambda: c.claim(1, entries[0][0], entries[0][1], b1.proof(0)))
    refused("batch 2 before batch 1", "accrue: sequence is not the next one",
            lambda: c.post_batch(*b1.args(sequence=2)))
    refused("batch 1 with a non-zero previous hash", "accrue: previous hash does not match",
            lambda: c.post_batch(*b1.args(prevHash=b"\1" * 32)))
    refused("batch 1 not starting at transfer 1", "accrue: transfer range does not follow the last batch",
            lambda: c.post_batch(*b1.args(firstTransfer=2)))
    for field, value in [("total", b1.fields["total"] + 1), ("root", b"\2" * 32), ("cutTime", 1),
                         ("entryCount", 999), ("lastTransfer", 5001)]:
        refused("tampered %s" % field, "accrue: not signed by the host signer",
                lambda field=field, value=value: c.post_batch(*b1.args(**{field: value})))
    wrong_key = Batch(other, chain_id, addr, 1, b"\0" * 32, 1, 5000, entries)
    refused("batch signed by another key", "accrue: not signed by the host signer",
            lambda: c.post_batch(*wrong_key.args()))
    other_chain = Batch(host, chain_id + 1, addr, 1, b"\0" * 32, 1, 5000, entries)
    refused("batch signed for another chain id", "accrue: not signed by the host signer",
            lambda: c.post_batch(*other_chain.args()))
    other_contract = Batch(host, chain_id, "0x" + "11" * 20, 1, b"\0" * 32, 1, 5000, entries)
    refused("batch signed for another contract", "accrue: not signed by the host signer",
            lambda: c.post_batch(*other_contract.args()))
    r, s, v = b1.signature[:32], int.from_bytes(b1.signature[32:64], "big"), b1.signature[64]
    high_s = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])
    refused("high-s twin of the host's signature", "accrue: signature s is high",
            lambda: c.post_batch(*b1.args(signature=high_s)))
    refused("signature with v = 29", "accrue: signature v is not 27 or 28",
            lambda: c.post_batch(*b1.args(signature=b1.signature[:64] + b"\x1d")))
    refused("64-byte signature", "accrue: signature is not 65 bytes",
            lambda: c.post_batch(*b1.args(signature=b1.signature[:64])))

    # Post batch 1.
    digest = c.post_batch(*b1.args())
    posted = logs_named(c, "BatchPosted")
    check("batch 1 accepted, digest returned", digest == b1.digest)
    check("BatchPosted event", len(posted) == 1 and posted[0].sequence == 1 and posted[0].digest == b1.digest
          and posted[0].root == b1.fields["root"] and posted[0].total == b1.fields["total"]
          and posted[0].entryCount == 300 and posted[0].firstTransfer == 1 and posted[0].lastTransfer == 5000,
          repr(posted))
    check("head moved", c.last_sequence() == 1 and c.last_digest() == b1.digest and c.last_transfer() == 5000)
    check("outstanding = total * wei per unit", c.outstanding() == b1.fields["total"] * 10**12)
    refused("batch 1 posted twice", "accrue: sequence is not the next one", lambda: c.post_batch(*b1.args()))

    # Claims need funds.
    refused("claim before any deposit", "accrue: not enough funds deposited",
            lambda: c.claim(1, entries[0][0], entries[0][1], b1.proof(0)))
    boa.env.set_balance(owner, 10**30)
    c.deposit(value=b1.fields["total"] * 10**12 + 5 * 10**18)
    check("Deposited event", len(logs_named(c, "Deposited")) == 1)

    relayer = boa.env.generate_address("relayer")
    all_paid = True
    for i, (a, amount) in enumerate(entries):
        before = boa.env.get_balance(a)
        with boa.env.prank(relayer):  # anyone may relay; the entry's own address is paid
            paid = c.claim(1, a, amount, b1.proof(i))
        ev = logs_named(c, "Claimed")
        ok = (paid == amount * 10**12 and boa.env.get_balance(a) - before == paid and len(ev) == 1
              and ev[0].account == a and ev[0].amount == amount and ev[0].sequence == 1)
        all_paid = all_paid and ok
    check("every entry of batch 1 paid in full to its own address", all_paid)
    check("nothing outstanding after every claim", c.outstanding() == 0 and c.unclaimed(1) == 0)
    check("relayer paid nothing", boa.env.get_balance(relayer) == 0)
    a0, m0 = entries[0]
    refused("second claim of the same entry", "accrue: already claimed", lambda: c.claim(1, a0, m0, b1.proof(0)))
    refused("claim of a batch never posted (2)", "accrue: no such batch", lambda: c.claim(2, a0, m0, b1.proof(0)))

    # Batch 2 links to batch 1.
    e2 = random_entries(3, 2)
    b2 = Batch(host, chain_id, addr, 2, b1.digest, 5001, 5009, e2)
    refused("batch 2 with a stale previous hash", "accrue: previous hash does not match",
            lambda: c.post_batch(*Batch(host, chain_id, addr, 2, b"\0" * 32, 5001, 5009, e2).args()))
    refused("batch 2 leaving a gap of transfers", "accrue: transfer range does not follow the last batch",
            lambda: c.post_batch(*Batch(host, chain_id, addr, 2, b1.digest, 5002, 5009, e2).args()))
    refused("batch 2 overlapping batch 1's transfers", "accrue: transfer range does not follow the last batch",
            lambda: c.post_batch(*Batch(host, chain_id, addr, 2, b1.digest, 5000, 5009, e2).args()))
    refused("batch 2 with an empty range", "accrue: transfer range is empty",
            lambda: c.post_batch(*Batch(host, chain_id, addr, 2, b1.digest, 5001, 5000, e2).args()))
    c.post_batch(*b2.args())
    c.deposit(value=10**24)
    check("batch 2 accepted after batch 1", c.last_sequence() == 2 and c.last_digest() == b2.digest)
    x, m = e2[1]
    refused("claim with a wrong amount", "accrue: invalid proof", lambda: c.claim(2, x, m + 1, b2.proof(1)))
    refused("claim with another entry's proof", "accrue: invalid proof", lambda: c.claim(2, x, m, b2.proof(0)))
    bad = b2.proof(1)
    bad[0] = bytes([bad[0][0] ^ 1]) + bad[0][1:]
    refused("claim with a corrupted proof", "accrue: invalid proof", lambda: c.claim(2, x, m, bad))
    refused("claim by an address not in the batch", "accrue: invalid proof",
            lambda: c.claim(2, relayer, m, b2.proof(1)))
    refused("batch 1's entry claimed against batch 2", "accrue: invalid proof",
            lambda: c.claim(2, a0, m0, b1.proof(0)))
    check("can_claim agrees", c.can_claim(2, x, m, b2.proof(1)) and not c.can_claim(2, x, m + 1, b2.proof(1)))
    c.claim(2, x, m, b2.proof(1))
    check("can_claim false once claimed", not c.can_claim(2, x, m, b2.proof(1)))

    # The signer: rotated only by the owner.
    new_host = Account.create("accrue host 2")
    with boa.env.prank(relayer):
        refused("set_signer by a non-owner", "accrue: only the owner", lambda: c.set_signer(new_host.address))
        refused("transfer_ownership by a non-owner", "accrue: only the owner", lambda: c.transfer_ownership(relayer))
        refused("withdraw_surplus by a non-owner", "accrue: only the owner", lambda: c.withdraw_surplus(relayer, 1))
    refused("set_signer to the zero address", "accrue: signer is the zero address",
            lambda: c.set_signer("0x" + "00" * 20))
    c.set_signer(new_host.address)
    ev = logs_named(c, "SignerChanged")
    check("SignerChanged event", len(ev) == 1 and ev[0].previous == host.address and ev[0].signer == new_host.address)
    e3 = random_entries(2, 3)
    old_key_b3 = Batch(host, chain_id, addr, 3, b2.digest, 5010, 5020, e3)
    refused("batch signed by the rotated-out key", "accrue: not signed by the host signer",
            lambda: c.post_batch(*old_key_b3.args()))
    b3 = Batch(new_host, chain_id, addr, 3, b2.digest, 5010, 5020, e3)
    c.post_batch(*b3.args())
    check("batch signed by the new key accepted", c.last_sequence() == 3)

    # A faulty tree cannot take more than its signed total.
    e4 = random_entries(4, 4)
    short = sum(a for _, a in e4) - 1
    b4 = Batch(new_host, chain_id, addr, 4, b3.digest, 5021, 5030, e4, total=short)
    c.post_batch(*b4.args())
    for i in range(3):
        c.claim(4, e4[i][0], e4[i][1], b4.proof(i))
    refused("claims beyond the batch's signed total", "accrue: claim exceeds the batch total",
            lambda: c.claim(4, e4[3][0], e4[3][1], b4.proof(3)))

    # The owner takes back only the surplus.
    owed = c.outstanding()
    surplus = boa.env.get_balance(c.address) - owed
    refused("withdrawing what posted batches owe", "accrue: would take funds posted batches owe",
            lambda: c.withdraw_surplus(owner, surplus + 1))
    before = boa.env.get_balance(relayer)
    c.withdraw_surplus(relayer, surplus)
    check("surplus withdrawn", boa.env.get_balance(relayer) - before == surplus
          and boa.env.get_balance(c.address) == owed)

    c.transfer_ownership(relayer)
    refused("the old owner after a handover", "accrue: only the owner", lambda: c.set_signer(host.address))
    with boa.env.prank(relayer):
        c.set_signer(host.address)
    check("the new owner rotates the signer", c.signer() == host.address)

    # A contract that continues a chain from another contract.
    c2 = deploy(host.address, wei_per_unit=1, last=(3, b3.digest, 5020))
    b4b = Batch(host, chain_id, c2.address, 4, b3.digest, 5021, 5040, e4)
    refused("continuation: wrong first transfer", "accrue: transfer range does not follow the last batch",
            lambda: c2.post_batch(*Batch(host, chain_id, c2.address, 4, b3.digest, 1, 5040, e4).args()))
    c2.post_batch(*b4b.args())
    check("a new contract continues the chain after batch 3", c2.last_sequence() == 4)



def calldata_gas(data):
    """A transaction's intrinsic gas: 21,000 plus 4 per zero and 16 per other calldata byte."""
    return 21000 + sum(4 if x == 0 else 16 for x in data)


def gas_figures(out_path):
    """Gas per post and per claim, as titanoboa reports it (execution only), and with a transaction's
    intrinsic cost added, for trees of 1,000 and 100,000 entries; claims paid to an address that
    held nothing before (the EVM charges 25,000 to create it) and to one that did."""
    chain_id = fresh_env()
    host = Account.create("accrue host")
    out = {}
    boa.env.set_balance(boa.env.eoa, 10**30)
    for n, sample in [(1_000, 50), (100_000, 50)]:  # 100k: the benchmark's batch size
        entries = random_entries(n, n)
        c = deploy(host.address, wei_per_unit=1)
        b = Batch(host, chain_id, c.address, 1, b"\0" * 32, 1, 10 * n, entries)
        _, g = gas_of(lambda: c.post_batch(*b.args()))
        post = {"execution": g, "transaction": g + calldata_gas(c.post_batch.prepare_calldata(*b.args()))}
        c.deposit(value=b.fields["total"])
        fig = {"fresh": [], "funded": []}
        step = n // sample
        for k, i in enumerate(range(0, n, step)):
            a, m = entries[i]
            kind = "funded" if k % 2 else "fresh"
            if kind == "funded":
                boa.env.set_balance(a, 1)
            _, g = gas_of(lambda: c.claim(1, a, m, b.proof(i)))
            fig[kind].append((g, g + calldata_gas(c.claim.prepare_calldata(1, a, m, b.proof(i)))))
        b2 = Batch(host, chain_id, c.address, 2, b.digest, 10 * n + 1, 20 * n, entries)
        _, g = gas_of(lambda: c.post_batch(*b2.args()))
        post["execution_next"] = g
        post["transaction_next"] = g + calldata_gas(c.post_batch.prepare_calldata(*b2.args()))
        claims = {}
        for kind, v in fig.items():
            claims[kind] = {"execution_mean": sum(x for x, _ in v) // len(v), "execution_max": max(x for x, _ in v),
                            "transaction_mean": sum(y for _, y in v) // len(v), "claims": len(v)}
        out["entries_%d" % n] = {"post_batch": post, "claim": claims,
                                 "proof_hashes": [min(map(len, b.tree["proofs"])), max(map(len, b.tree["proofs"]))]}
    json.dump(out, open(out_path, "w"), indent=1)
    print("gas:", json.dumps(out))


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("contract", "e2e", "gas", "check"):
        sys.stderr.write("usage: settle_chain.py contract | e2e PLAN.json | check FILE... | gas OUT.json\n")
        return 2
    try:
        if sys.argv[1] == "contract":
            contract_tests()
        elif sys.argv[1] == "gas":
            gas_figures(sys.argv[2])
        elif sys.argv[1] == "check":
            run_check(sys.argv[2:])
        else:
            run_plan(json.load(open(sys.argv[2])))
    except Exception as e:
        # boa's errors carry the contract's whole storage: the first lines say enough.
        print("\n".join(traceback.format_exc().splitlines()[-40:])[:4000])
        check("ran to the end", False, "an exception escaped (above)")
    print("# settle_chain: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


# ---------------------------------------------------------------- accrue's own batches

def accrue(plan, *args, ok=True):
    """Runs the accrue binary; returns (exit status, stdout)."""
    import subprocess
    r = subprocess.run([plan["accrue"]] + [str(a) for a in args], capture_output=True, text=True)
    if ok and r.returncode != 0:
        raise RuntimeError("accrue %s: exit %d: %s" % (" ".join(map(str, args)), r.returncode, r.stderr.strip()))
    return r.returncode, r.stdout


def own_digest(batch):
    """The digest from the batch's top-level fields, through typed data built here (not the batch's
    own typed_data): the struct's definition is this file's, checked against the contract's."""
    fields = {
        "sequence": batch["sequence"], "prevHash": b32(batch["prev_hash"]),
        "firstTransfer": batch["first_transfer"], "lastTransfer": batch["last_transfer"],
        "entryCount": batch["entry_count"], "total": int(batch["total"]), "root": b32(batch["root"]),
        "cutTime": batch["cut_time"],
    }
    td = typed_data(fields, batch["chain_id"], batch["verifying_contract"])
    return bytes(Account.sign_message(encode_typed_data(full_message=td), b"\1" * 32).message_hash)


def check_batch(name, batch, proofs, signer=None):
    """A batch and its proofs checked with eth-account and OpenZeppelin's algorithm alone."""
    signable = encode_typed_data(full_message=batch["typed_data"])
    recovered = Account.recover_message(signable, signature=b32(batch["signature"]))
    digest = bytes(Account.sign_message(signable, b"\1" * 32).message_hash)
    check("%s: eth-account's digest of typed_data is the batch's" % name, hx(digest) == batch["digest"],
          "%s != %s" % (hx(digest), batch["digest"]))
    check("%s: the top-level fields give the same digest" % name, own_digest(batch) == digest)
    check("%s: eth-account recovers the signer" % name, recovered == batch["signer"] and
          (signer is None or recovered == signer), "%s, batch says %s" % (recovered, batch["signer"]))
    entries = [(a, int(m)) for a, m in batch["entries"]]
    tree = oz_tree(entries)
    check("%s: OpenZeppelin's root of the entries" % name, tree["root"] == batch["root"],
          "%s != %s" % (tree["root"], batch["root"]))
    check("%s: entries sorted by address, distinct, count and total" % name,
          [int(a, 16) for a, _ in entries] == sorted(set(int(a, 16) for a, _ in entries)) and
          len(entries) == batch["entry_count"] and sum(m for _, m in entries) == int(batch["total"]))
    bad = []
    for i, (a, m) in enumerate(entries):
        p = proofs.get(a.lower())
        if p is None:
            continue
        h = oz_leaf(a, m)
        ok = p["leaf"] == hx(h) and int(p["amount"]) == m and p["root"] == batch["root"]
        for sib in p["proof"]:
            h = keccak(b"".join(sorted([h, b32(sib)])))  # MerkleProof.processProof
        if not ok or hx(h) != batch["root"] or p["proof"] != tree["proofs"][i]:
            bad.append(a)
    check("%s: %d proofs lead to the root (processProof) and equal OZ's getProof" % (name, len(proofs)), not bad,
          "bad: %s" % bad[:3])


def run_check(files):
    """check BATCH.json [PROOF.json ...] ...: each batch with the proofs that follow it."""
    batch, proofs, name = None, {}, None
    for f in files + [None]:
        doc = json.load(open(f)) if f else None
        if f is None or "typed_data" in doc:
            if batch is not None:
                check_batch(name, batch, proofs)
            batch, proofs, name = doc, {}, os.path.basename(f) if f else None
        else:
            proofs[doc["address"].lower()] = doc


def run_plan(plan):
    """The whole path: real metered activity (`accrue run` of the demo agents, whose calls pay the
    demo datanet's contributors, the agents' author and the operator), `accrue settle`, `accrue batch
    --json`, the contract accepting that batch, every payee claiming with `accrue proof` output, the
    chain's balances matching the batches and the ledger's settled balances, and each refusal."""
    chain_id = fresh_env(plan.get("chain_id", 31337))
    wei = 10**12  # a base unit (10^-6 of the display currency) as 10^-6 ETH
    _, out = accrue(plan, "address", "--key", plan["key"])
    signer = out.strip()
    owner = boa.env.eoa
    boa.env.set_balance(owner, 10**30)
    c = deploy(signer, wei_per_unit=wei)
    paid = {}
    work = plan["workdir"]
    for r in range(1, plan["rounds"] + 1):
        for agent, text in plan["calls"][r - 1]:  # metered activity for this round
            accrue(plan, "run", agent, "--input", text, "--db", plan["db"], "--json")
        accrue(plan, "ledger", "check", "--db", plan["db"])
        args = ["settle", "--key", plan["key"], "--db", plan["db"], "--json"]
        if r == 1:
            args += ["--chain-id", chain_id, "--contract", c.address]
        _, out = accrue(plan, *args)
        head = json.loads(out)["batch"] if out.startswith('{"batch"') else json.loads(out)
        check("round %d: accrue settle cut batch %d" % (r, r), head and head["sequence"] == r, out[:200])
        _, text = accrue(plan, "batch", r, "--db", plan["db"], "--json")
        path = os.path.join(work, "batch%d.json" % r)
        open(path, "w").write(text)
        batch = json.loads(text)
        entries = [(a, int(m)) for a, m in batch["entries"]]
        proofs = {}
        for a, _ in entries:
            _, ptext = accrue(plan, "proof", r, a, "--db", plan["db"], "--json")
            proofs[a.lower()] = json.loads(ptext)
        check_batch("batch %d" % r, batch, proofs, signer)
        st, vout = accrue(plan, "verify", path, "--db", plan["db"], ok=False)
        check("batch %d: accrue verify --db holds" % r, st == 0 and "verified" in vout, vout[-300:])

        fields = [batch["sequence"], b32(batch["prev_hash"]), batch["first_transfer"], batch["last_transfer"],
                  batch["entry_count"], int(batch["total"]), b32(batch["root"]), batch["cut_time"]]
        sig = b32(batch["signature"])
        check("batch %d: the contract's digest is the batch's" % r, hx(c.batch_digest(*fields)) == batch["digest"])
        a0, m0 = entries[0]
        p0 = [b32(x) for x in proofs[a0.lower()]["proof"]]
        refused("batch %d: claim before it is posted" % r, "accrue: no such batch", lambda: c.claim(r, a0, m0, p0))
        tampered = list(fields)
        tampered[5] += 1
        refused("batch %d: posted with a tampered total" % r, "accrue: not signed by the host signer",
                lambda: c.post_batch(*tampered, sig))
        if r > 1:
            skip = list(fields)
            skip[0] += 1
            refused("batch %d: posted as the wrong sequence" % r, "accrue: sequence is not the next one",
                    lambda: c.post_batch(*skip, sig))
        digest = c.post_batch(*fields, sig)
        check("batch %d: the contract accepts accrue's batch" % r, hx(digest) == batch["digest"] and
              c.last_sequence() == r)
        c.deposit(value=int(batch["total"]) * wei)
        if len(entries) > 1:
            a1, m1 = entries[1]
            p1 = [b32(x) for x in proofs[a1.lower()]["proof"]]
            refused("batch %d: a wrong amount" % r, "accrue: invalid proof", lambda: c.claim(r, a0, m0 + 1, p0))
            refused("batch %d: another entry's proof" % r, "accrue: invalid proof", lambda: c.claim(r, a0, m0, p1))
        all_paid = True
        for a, m in entries:
            pr = proofs[a.lower()]
            before = boa.env.get_balance(a)
            got = c.claim(r, pr["address"], int(pr["amount"]), [b32(x) for x in pr["proof"]])
            all_paid = all_paid and got == m * wei and boa.env.get_balance(a) - before == m * wei
            paid[a] = paid.get(a, 0) + m
        check("batch %d: every payee claimed with accrue proof's output and was paid" % r, all_paid)
        refused("batch %d: a second claim" % r, "accrue: already claimed", lambda: c.claim(r, a0, m0, p0))
        check("batch %d: nothing left owed on chain" % r, c.outstanding() == 0 and c.unclaimed(r) == 0)
    check("the chain's balances are the batches' sums for each of %d payees" % len(paid),
          all(boa.env.get_balance(a) == m * wei for a, m in paid.items()))
    settled = {a: json.loads(accrue(plan, "balance", a, "--db", plan["db"], "--json")[1])["settled"] for a in paid}
    check("the ledger's settled balances are what the chain paid", settled == paid, "%s != %s" % (settled, paid))
    _, out = accrue(plan, "ledger", "check", "--db", plan["db"])
    check("accrue ledger check holds after the batches", "contiguous_sequence" in out)


if __name__ == "__main__":
    sys.exit(main())
